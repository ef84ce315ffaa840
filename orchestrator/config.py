"""Settings: the only module that reads the environment (every variable is prefixed TOOLSHED_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from retrieval.isolation import ParseLimits


def _default_max_sandboxes() -> int:
    # Four per GiB of RAM: an idle sandbox takes 35-100 MiB, a busy one a few hundred.
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(4, memory * 4 >> 30)


def _default_run_dir() -> Path:
    # Kernel ipc sockets live here; AF_UNIX paths are capped at 107 bytes, so this must stay short.
    return Path("/run/toolshed") if os.geteuid() == 0 else Path(f"/tmp/toolshed-{os.geteuid()}")


def _default_data_dir() -> Path:
    """One place per user, wherever the server or the CLI is started (XDG's data home)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "toolshed"


def _default_model_cache() -> Path:
    """Built models (the int8 embedding model) are shared by every data dir of the user (XDG's cache home)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toolshed" / "models"


class ProjectLimits(BaseModel):
    """What one project may hold at once; None is no limit (for MCP sessions and Jupyter kernels: the server's
    per-project default)."""

    model_config = ConfigDict(extra="forbid")

    sandboxes: int | None = Field(None, ge=1)
    stored_bytes: str | None = None
    mcp_sessions: int | None = Field(None, ge=1)
    jupyter_kernels: int | None = Field(None, ge=1)


_HOST = r"(local|kubernetes|(tcp|ssh|unix)://[^,\s]+)"


class Settings(BaseSettings):
    """Every knob of the server, read once from TOOLSHED_* variables (see README, "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="TOOLSHED_", extra="ignore")

    host: str = "127.0.0.1"
    # The other servers' wires, each on or off (the OpenAI face at /v1 is always on).
    mcp: bool = True
    # Answer MCP calls as plain JSON instead of event streams: about 2 ms faster per call, but no progress
    # notifications (clients with short timeouts then give up on long cells).
    mcp_json_response: bool = False
    jupyter: bool = True
    librechat: bool = True
    # LibreChat's Code API JWTs: the PEM public key (or a file holding it), and the project their callers act for.
    librechat_jwt_public_key: str = ""
    librechat_project: str = "librechat"
    port: int = 8000
    # A JSON list of keys (one shared project), or {"key": "project"}; admin keys see every project.
    api_keys: list[str] | dict[str, str] = Field(default_factory=list)
    admin_keys: list[str] = Field(default_factory=list)
    # {"project": {"sandboxes": 4, "stored_bytes": "10g", "mcp_sessions": 20, "jupyter_kernels": 4}}; "*"
    # applies to every project not named.
    project_limits: dict[str, ProjectLimits] = Field(default_factory=dict)
    # What every project may hold where its limits name nothing: open MCP sessions (the MCP SDK's own cap is
    # 10,000 for the whole server, which one project could fill in seconds) and Jupyter kernels.
    project_mcp_sessions: int = Field(100, ge=1)
    project_jupyter_kernels: int = Field(16, ge=1)
    # Cells one Jupyter kernel websocket may hold queued behind the running one; more are refused at once.
    jupyter_queued_cells: int = Field(8, ge=1)
    data_dir: Path = Field(default_factory=_default_data_dir)
    # postgresql://user@host:port/db puts the metadata and the retrieval catalog in PostgreSQL (replicas share
    # them); empty: SQLite files in data_dir.
    database_url: str = ""
    run_dir: Path = Field(default_factory=_default_run_dir)
    # One server per namespace at a time; a replica id is `namespace/random`, so a namespace has no "/".
    namespace: str = Field("default", pattern=r"^[^/]+$")

    image: str = ""
    image_build: str = "auto"
    sandbox_uid: int = 1000
    # The OCI runtime sandboxes start under: runsc (gVisor: a user-space kernel between model code and the host's),
    # runc, or auto (runsc when Docker has it registered and a probe sandbox works under it, else runc with a
    # warning); sandbox_gvisor_runtime is runsc's name in Docker's daemon.json.
    sandbox_runtime: Literal["auto", "runsc", "runc"] = "auto"
    sandbox_gvisor_runtime: str = "runsc"
    # Where sandboxes run, comma-separated (issue 33): "local" (this machine's Docker Engine, sharing its disk:
    # the fastest path, and the default), or Docker Engine endpoints reached through their API alone:
    # tcp://host:2376 (TLS client certificates from sandbox_tls_dir), ssh://user@host[:port][/docker.sock],
    # unix:///path.sock; or
    # "kubernetes" (kernel pods through agent-sandbox, docs/kubernetes.md). A new sandbox goes to the host with
    # the most memory left under its sandboxes' limits.
    sandbox_hosts: str = Field("local", pattern=rf"^\s*{_HOST}(\s*,\s*{_HOST})*\s*$")
    # Docker's client files for tcp:// hosts: ca.pem (the CA the engines' certificates are signed by), cert.pem
    # and key.pem (this server's client certificate).
    sandbox_tls_dir: Path | None = None
    # Seconds between checks of the remote hosts; one that misses two in a row is down and its sandboxes lost.
    sandbox_host_check_interval: float = Field(2.0, gt=0)
    # The "kubernetes" host: the kubeconfig file (unset: the service account of the pod the server runs in), the
    # namespace the kernel pods run in, and the RuntimeClass that is gVisor there ("" for the cluster's default
    # runtime). The pods run TOOLSHED_IMAGE, as the nodes pull it.
    kubernetes_kubeconfig: Path | None = None
    kubernetes_namespace: str = "toolshed"
    kubernetes_runtime_class: str = "gvisor"
    sandbox_cpus: float = 1.0
    sandbox_pids_limit: int = 256
    sandbox_disk_quota: str = "1g"
    sandbox_tmp_size: str = "256m"
    default_memory_limit: str = "1g"

    execution_timeout: float = 120.0
    max_execution_timeout: float = 3600.0
    interrupt_grace: float = 1.0
    kernel_start_timeout: float = 60.0
    max_output_bytes: int = 1 << 20
    reap_interval: float = 30.0
    # Sandboxes kept started for new containers and threads; each idles at ~60 MiB with numpy/pandas loaded.
    pool_size: int = Field(default_factory=lambda: 2 if (os.cpu_count() or 1) <= 2 else 4)
    # Modules a pooled sandbox imports while it waits: each one makes its first import free and costs idle
    # memory in every pooled sandbox (matplotlib.pyplot: ~24 MiB, and ~0.4 s off a thread's first plot).
    pool_preload: list[str] = Field(default_factory=lambda: ["numpy", "pandas"])
    # Live sandbox containers (pooled ones included). At the cap, a new container reclaims the sandbox idle
    # longest (its files stay); if every one is running a cell, the request waits up to capacity_wait seconds.
    max_sandboxes: int = Field(default_factory=_default_max_sandboxes, ge=1)
    # Cells started at once across all sandboxes, the rest queued in arrival order; a cell running longer than
    # cell_quantum seconds gives its place up, so long cells never hold short ones back for more than that.
    cell_slots: int = Field(default_factory=lambda: 2 * (os.cpu_count() or 1), ge=1)
    cell_quantum: float = Field(0.05, gt=0)
    capacity_wait: float = Field(30.0, ge=0)
    sandbox_max_lifetime: float = Field(24 * 3600.0, gt=0)
    max_upload_bytes: int = 512 << 20
    max_export_bytes: int = 512 << 20
    # Per execution: changed files exported and listed, and displayed images kept; the rest are counted.
    max_export_files: int = 100
    # Stored export bytes (files and images) per sandbox; exported files the user deletes give theirs back.
    sandbox_export_budget: str = "2g"
    # Nothing is exported while the data dir's disk has less free space than this.
    min_free_disk: str = "1g"
    # How much of /mnt/data the look after every cell visits: entries, and folder depth.
    scan_max_entries: int = Field(10_000, ge=1)
    scan_max_depth: int = Field(32, ge=1)
    # A kernel message frame over this is refused (ZMQ drops the connection and it reconnects).
    max_kernel_message_bytes: int = Field(16 << 20, ge=1 << 20)
    # JSON request bodies (uploads are multipart and have max_upload_bytes).
    max_json_body_bytes: int = Field(4 << 20, ge=1 << 10)
    tool_output_max_chars: int = 8000

    log_format: Literal["text", "json"] = "text"
    log_level: str = "info"

    # The Assistants API's model: any OpenAI-compatible chat-completions endpoint; TOOLSHED_MODEL_MAP routes
    # model names elsewhere ({"name": "http://host/v1"} or {"name": {"base_url": ..., "api_key": ...}}).
    model_base_url: str = ""
    model_api_key: str = "unused"
    model_map: dict[str, Any] = Field(default_factory=dict)
    model_timeout: float = Field(120.0, gt=0)
    model_max_retries: int = Field(3, ge=0)
    # How much a prompt may hold (truncation_strategy auto fits the conversation within it), and how long a run
    # may stay live before it ends `expired` (OpenAI: 10 minutes).
    model_context_tokens: int = Field(16_384, ge=1024)
    run_expiry_seconds: float = Field(600.0, gt=0)
    # What one run's model may write in all (answers and tool-call arguments) before the run ends incomplete.
    run_max_output_chars: int = Field(1_000_000, gt=0)
    # How long a replica's hold on a live run or response lasts unrenewed (it renews every third of it): a replica
    # that dies has its runs and responses ended `failed` by another within about this long and a third.
    lease_seconds: float = Field(30.0, ge=3)
    # This replica's address as the other replicas reach it (http://10.0.0.5:8000). Set on every replica: a request
    # for a container another replica holds is forwarded there. Empty: a server alone, nothing forwarded.
    replica_url: str = ""

    embedding_model: str = "all-MiniLM-L6-v2"
    # openvino-int8 runs the same model about twice as fast on a CPU; torch runs it as trained.
    embedding_runtime: Literal["openvino-int8", "torch"] = "openvino-int8"
    model_cache_dir: Path = Field(default_factory=_default_model_cache)
    # Each uploaded file is parsed in a child process under these limits; past them it ends `failed`.
    parse_timeout: float = Field(120.0, gt=0)
    parse_memory: str = "2g"
    search_dense_weight: float = 0.45
    # file_search hands the model no passage scoring below this (hybrid scores are absolute, 0 to 1).
    file_search_score_threshold: float = Field(0.2, ge=0, le=1)

    # A bucket name puts uploaded files' bytes in S3-compatible object storage (the other values empty: AWS's
    # endpoint and boto3's own credential chain and region); local disk then keeps a cache of at most
    # s3_cache_size. No bucket: files under data_dir.
    s3_bucket: str = ""
    s3_endpoint_url: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: SecretStr = SecretStr("")
    s3_region: str = ""
    s3_cache_size: str = "2g"

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if not self.s3_bucket and (self.s3_endpoint_url or self.s3_access_key_id):
            raise ValueError("TOOLSHED_S3_BUCKET must name the bucket when other TOOLSHED_S3_* variables are set")
        return self

    @property
    def open_access(self) -> bool:
        """True when no API key is configured, so every request is trusted."""
        return not self.api_keys and not self.admin_keys

    def parse_limits(self) -> ParseLimits:
        from orchestrator.sandbox.workspace import parse_size

        return ParseLimits(self.parse_timeout, parse_size(self.parse_memory))

    def engine_options(self) -> dict[str, Any]:
        """The retrieval engine's settings, for VectorStoreEngine(data_dir / "retrieval", **options)."""
        return {"model": self.embedding_model, "runtime": self.embedding_runtime,
                "model_cache": self.model_cache_dir, "dense_weight": self.search_dense_weight,
                "parse_limits": self.parse_limits(), "database_url": self.database_url}

    @property
    def sandbox_host_list(self) -> list[str]:
        return list(dict.fromkeys(host.strip() for host in self.sandbox_hosts.split(",")))

    def limits_of(self, project: str) -> ProjectLimits:
        """The project's limits, with the server's per-project defaults where they name no MCP session or
        Jupyter kernel limit."""
        limits = self.project_limits.get(project) or self.project_limits.get("*") or ProjectLimits()
        return limits.model_copy(update={
            "mcp_sessions": limits.mcp_sessions or self.project_mcp_sessions,
            "jupyter_kernels": limits.jupyter_kernels or self.project_jupyter_kernels})
