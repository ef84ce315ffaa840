"""The sandbox hosts as configured (TOOLSHED_SANDBOX_HOSTS), each connected, checked to hold the sandbox image,
and given the OCI runtime its sandboxes start under."""

from __future__ import annotations

import logging

from orchestrator.config import Settings
from orchestrator.sandbox.errors import EngineUnavailable
from orchestrator.sandbox.gvisor import REGISTRATION, RuntimeChoice, choose_runtime
from orchestrator.sandbox.host import SandboxHost
from orchestrator.sandbox.hosts import Hosts
from orchestrator.sandbox.kubernetes.backend import KubernetesBackend
from orchestrator.sandbox.kubernetes.host import NAME as KUBERNETES
from orchestrator.sandbox.kubernetes.host import KubernetesHost
from orchestrator.sandbox.kubernetes.manifests import KernelSpec, tier_of
from orchestrator.sandbox.local_host import LOCAL, LocalHost
from orchestrator.sandbox.policy import MEMORY_LIMITS
from orchestrator.sandbox.remote_host import RemoteHost, engine_runtimes
from orchestrator.sandbox.runtime import DockerRuntime
from orchestrator.sandbox.workspace import WorkspaceStore, parse_size

log = logging.getLogger("toolshed")


def connect_hosts(settings: Settings, image: str) -> tuple[Hosts, RuntimeChoice]:
    """Every configured host (blocking); the runtime choice reported is the first host's. A remote host that does
    not answer now is left out with a warning while another answers; EngineUnavailable when none does."""
    hosts: list[SandboxHost] = []
    choices: list[RuntimeChoice] = []
    problems = []
    for endpoint in settings.sandbox_host_list:
        host: SandboxHost
        try:
            if endpoint == LOCAL:
                host, choice = _local(settings, image)
            elif endpoint == KUBERNETES:
                host, choice = _kubernetes(settings, image)
            else:
                host, choice = _remote(settings, endpoint, image)
        except EngineUnavailable as exc:
            problems.append(str(exc))
            log.warning("sandbox host %s is left out: %s", endpoint, exc)
            continue
        hosts.append(host)
        choices.append(choice)
    if not hosts:
        raise EngineUnavailable("; ".join(problems))
    return Hosts(hosts), choices[0]


def _local(settings: Settings, image: str) -> tuple[LocalHost, RuntimeChoice]:
    workspaces = WorkspaceStore(settings.data_dir.resolve() / "sandboxes", settings.run_dir / settings.namespace,
                                uid=settings.sandbox_uid, quota_bytes=parse_size(settings.sandbox_disk_quota))
    if not workspaces.enforces_quota:
        log.warning("not running as root: the /mnt/data size quota (%s) is NOT enforced", settings.sandbox_disk_quota)
    runtime = DockerRuntime.from_env(image=image, namespace=settings.namespace, uid=settings.sandbox_uid)
    if not runtime.image_exists():
        raise EngineUnavailable(f"Sandbox image {image} is missing; build it with `toolshed image build`.")
    choice = choose_runtime(runtime, settings.sandbox_runtime, settings.sandbox_gvisor_runtime,
                            settings.run_dir / settings.namespace)
    return LocalHost(runtime.using(choice.name), workspaces), choice


def _remote(settings: Settings, endpoint: str, image: str) -> tuple[RemoteHost, RuntimeChoice]:
    """A remote engine: no probe sandbox (it would need a shared folder); gVisor is used where the engine has it
    registered, as a sandbox there needs no host socket."""
    mode, gvisor = settings.sandbox_runtime, settings.sandbox_gvisor_runtime
    registered = engine_runtimes(endpoint, settings.sandbox_tls_dir, image)
    if mode == "runc":
        choice = RuntimeChoice("runc", mode)
    elif gvisor in registered:
        choice = RuntimeChoice(gvisor, mode)
    elif mode == "runsc":
        raise EngineUnavailable(f"TOOLSHED_SANDBOX_RUNTIME=runsc, but {endpoint} has no runtime {gvisor!r} "
                                f"({REGISTRATION})")
    else:
        choice = RuntimeChoice("runc", mode, f"{endpoint} has no runtime named {gvisor!r}")
        log.warning("sandboxes on %s run under runc, NOT gVisor: %s", endpoint, choice.problem)
    host = RemoteHost(endpoint, tls_dir=settings.sandbox_tls_dir, image=image, namespace=settings.namespace,
                      uid=settings.sandbox_uid, oci_runtime=choice.name,
                      disk_bytes=parse_size(settings.sandbox_disk_quota),
                      max_message_bytes=settings.max_kernel_message_bytes)
    return host, choice


def _kubernetes(settings: Settings, image: str) -> tuple[KubernetesHost, RuntimeChoice]:
    """Kernel pods through agent-sandbox: the template, pools and policy applied (idempotent), and the cluster's
    RuntimeClass reported as the runtime (the cluster, not this server, runs it)."""
    tier = tier_of(parse_size(settings.default_memory_limit)) or next(iter(MEMORY_LIMITS))
    spec = KernelSpec(image=image, k8s_namespace=settings.kubernetes_namespace,
                      namespace=settings.namespace, uid=settings.sandbox_uid, cpus=settings.sandbox_cpus,
                      pids=settings.sandbox_pids_limit, tmp_size=settings.sandbox_tmp_size,
                      disk_size=settings.sandbox_disk_quota, runtime_class=settings.kubernetes_runtime_class,
                      pools={tier: settings.pool_size})
    kubeconfig = str(settings.kubernetes_kubeconfig) if settings.kubernetes_kubeconfig else None
    backend = KubernetesBackend.from_kubeconfig(spec, kubeconfig, ready_timeout=settings.kernel_start_timeout,
                                                max_lifetime=settings.sandbox_max_lifetime)
    backend.apply()
    host = KubernetesHost(backend, max_message_bytes=settings.max_kernel_message_bytes,
                          poll_interval=settings.sandbox_host_check_interval)
    runtime = settings.kubernetes_runtime_class or "the cluster's default"
    return host, RuntimeChoice(runtime, settings.sandbox_runtime)
