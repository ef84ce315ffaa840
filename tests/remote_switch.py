"""TOOLSHED_TEST_REMOTE=1 (`make test-remote`): the test servers run their sandboxes on a second, separate dockerd
reached over mutual TLS (tests/second_dockerd.py), sharing no path with them, instead of on the local engine.

The suites run unchanged: this process's DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH name that engine, so
what a test inspects with `docker.from_env()` (or the docker CLI) is the engine its sandboxes are on.

TOOLSHED_TEST_KUBERNETES=1 (`make test-kubernetes`): they run their sandboxes as kernel pods of a fake Kubernetes
API server (tests/kubernetes_fake.py, served from this process) whose fake kubelet runs each pod as containers of
the local engine, reached through the pods' exec WebSocket alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import docker
from docker.models.containers import Container

from orchestrator.sandbox.image import default_tag
from orchestrator.sandbox.kubernetes.manifests import CONTAINER_NAME, claim_name
from tests.kubernetes_fake import FakeCluster, fake_api_server, kubeconfig
from tests.kubernetes_kubelet import Kubelet, container_name
from tests.second_dockerd import SecondDockerd

REMOTE = os.environ.get("TOOLSHED_TEST_REMOTE", "").lower() in ("1", "true", "yes")
KUBERNETES = os.environ.get("TOOLSHED_TEST_KUBERNETES", "").lower() in ("1", "true", "yes")
_engine: SecondDockerd | None = None
_cluster: ExitStack | None = None
_fake: FakeCluster | None = None
_kubernetes: dict[str, str] = {}


def tls_dir(engine: SecondDockerd) -> Path:
    """The engine's client certificate under Docker's own names (ca.pem, cert.pem, key.pem)."""
    folder = engine.root / "client-tls"
    if not folder.exists():
        folder.mkdir(mode=0o700)
        for source, name in ((engine.certs.ca, "ca.pem"), (engine.certs.client_cert, "cert.pem"),
                             (engine.certs.client_key, "key.pem")):
            shutil.copyfile(source, folder / name)
    return folder


def host_settings(engine: SecondDockerd) -> dict[str, str]:
    """A server's settings for sandboxes on `engine`."""
    return {"TOOLSHED_SANDBOX_HOSTS": engine.url, "TOOLSHED_SANDBOX_TLS_DIR": str(tls_dir(engine))}


def start_engine() -> SecondDockerd:
    """A second engine with the sandbox image, loaded from the local engine; stop() it after."""
    engine = SecondDockerd()
    try:
        engine.start()
        engine.load_image(docker.from_env(), default_tag())
    except BaseException:
        engine.stop()
        raise
    return engine


def remote_settings() -> dict[str, str]:
    """Under TOOLSHED_TEST_REMOTE, the settings that put a test server's sandboxes on the second engine (started at
    the first call, and from then on the engine this process's Docker clients talk to); else none."""
    global _engine
    if KUBERNETES:
        return kubernetes_settings()
    if not REMOTE:
        return {}
    if _engine is None:
        _engine = start_engine()
        os.environ.update({"DOCKER_HOST": _engine.url, "DOCKER_TLS_VERIFY": "1",
                           "DOCKER_CERT_PATH": str(tls_dir(_engine))})
        # requests would verify the engine against these bundles instead of the engine's own CA.
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            os.environ.pop(name, None)
    return host_settings(_engine)


def kubernetes_settings() -> dict[str, str]:
    """A server's settings for sandboxes on the fake cluster (served from this process from the first call)."""
    global _cluster, _fake
    if _cluster is None:
        _cluster = ExitStack()
        kubelet = Kubelet(docker.from_env(), label="kubernetes-switch")
        _cluster.callback(kubelet.close)
        _fake = FakeCluster(kubelet=kubelet, bind_after=0.05)
        url = _cluster.enter_context(fake_api_server(_fake))
        folder = Path(tempfile.mkdtemp(prefix="toolshed-k8s-"))
        _cluster.callback(shutil.rmtree, folder, True)
        _kubernetes.update(TOOLSHED_SANDBOX_HOSTS="kubernetes", TOOLSHED_KUBERNETES_RUNTIME_CLASS="",
                           TOOLSHED_KUBERNETES_KUBECONFIG=str(kubeconfig(folder / "kubeconfig", url)))
    return dict(_kubernetes)


def engine_container(sandbox_id: str) -> Container:
    """The engine's container that runs the sandbox's kernel: `toolshed-<id>`, or under TOOLSHED_TEST_KUBERNETES
    the fake kubelet's kernel container of its pod."""
    if _fake is None:
        return docker.from_env().containers.get(f"toolshed-{sandbox_id}")
    with _fake.lock:
        claim = _fake.objects[("sandboxclaims", "toolshed", claim_name(sandbox_id))]
    return docker.from_env().containers.get(container_name(claim["status"]["sandbox"]["name"], CONTAINER_NAME))


def stop_engine() -> None:
    global _engine, _cluster
    if _cluster is not None:
        _cluster.close()
        _cluster = None
    if _engine is not None:
        for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            os.environ.pop(name, None)
        _engine.stop()
        _engine = None
