"""TOOLSHED_TEST_REMOTE=1 (`make test-remote`): the test servers run their sandboxes on a second, separate dockerd
reached over mutual TLS (tests/second_dockerd.py), sharing no path with them, instead of on the local engine.

The suites run unchanged: this process's DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH name that engine, so
what a test inspects with `docker.from_env()` (or the docker CLI) is the engine its sandboxes are on.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import docker

from orchestrator.sandbox.image import default_tag
from tests.second_dockerd import SecondDockerd

REMOTE = os.environ.get("TOOLSHED_TEST_REMOTE", "").lower() in ("1", "true", "yes")
_engine: SecondDockerd | None = None


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


def stop_engine() -> None:
    global _engine
    if _engine is not None:
        for name in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            os.environ.pop(name, None)
        _engine.stop()
        _engine = None
