"""Prometheus metrics (GET /metrics). Counted where the work happens in the service layer; engine state (live
sandboxes, reaped ones) is read at scrape time, so the engines stay free of any metrics library."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from orchestrator.sandbox.manager import SandboxManager
from orchestrator.sandbox.models import Execution

REGISTRY = CollectorRegistry()
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

EXECUTIONS = Counter("toolshed_executions", "Cells run, by final status.", ["status"], registry=REGISTRY)
EXECUTION_SECONDS = Histogram("toolshed_execution_seconds", "Time to run one cell, as the engine measured it.",
                              buckets=_LATENCY_BUCKETS, registry=REGISTRY)
EXECUTION_FAILURES = Counter("toolshed_execution_failures", "Cells ended by the engine: timeouts, out-of-memory "
                             "kills, kernel deaths.", ["reason"], registry=REGISTRY)
KERNEL_RESTARTS = Counter("toolshed_kernel_restarts", "Executions that needed a fresh kernel first.",
                          registry=REGISTRY)
ARTIFACTS = Counter("toolshed_artifacts_exported", "Files generated in sandboxes and exported.", registry=REGISTRY)
ARTIFACTS_SKIPPED = Counter("toolshed_artifacts_not_exported", "Generated files too large or too many to export.",
                            registry=REGISTRY)
SEARCHES = Counter("toolshed_searches", "Vector store searches, by mode.", ["mode"], registry=REGISTRY)
SEARCH_SECONDS = Histogram("toolshed_search_seconds", "Search latency, query embedding included.",
                           buckets=_LATENCY_BUCKETS, registry=REGISTRY)

ACQUIRE_SECONDS = Histogram("toolshed_sandbox_acquire_seconds", "Time until a sandbox's kernel answered, by "
                            "source: pool (warm hand-out), cold (fresh container), rehydrate (after a reclaim).",
                            ["source"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
CAPACITY_WAIT_SECONDS = Histogram("toolshed_capacity_wait_seconds", "Time a container start waited for a slot under "
                                  "TOOLSHED_MAX_SANDBOXES.", buckets=_LATENCY_BUCKETS, registry=REGISTRY)
RECLAIMED = Counter("toolshed_sandboxes_reaped", "Containers reclaimed, files kept: idle past expiry, past the "
                    "maximum lifetime, evicted under the cap, or stopped (engine restart).", ["reason"],
                    registry=REGISTRY)
for _reason in ("idle", "lifetime", "capacity", "stopped"):
    RECLAIMED.labels(_reason)  # exported as 0 from the start, so rate() works before the first reclaim

INGESTED = Counter("toolshed_files_ingested", "Files indexed into vector stores, by outcome.", ["status"],
                   registry=REGISTRY)
INGEST_SECONDS = Histogram("toolshed_ingest_seconds", "Time to index one batch of files (parse, chunk, embed, store).",
                           buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600), registry=REGISTRY)
RUNS = Counter("toolshed_runs", "Assistants runs, by final status.", ["status"], registry=REGISTRY)
RUN_SECONDS = Histogram("toolshed_run_seconds", "Time from a run's creation to its end.",
                        buckets=_LATENCY_BUCKETS, registry=REGISTRY)
MODEL_CALL_SECONDS = Histogram("toolshed_model_call_seconds", "One chat completion of a run, streamed to its end.",
                               buckets=_LATENCY_BUCKETS, registry=REGISTRY)
MODEL_TOKENS = Counter("toolshed_model_tokens", "Tokens the model endpoint reported, by kind.", ["kind"],
                       registry=REGISTRY)
TOOL_CALLS = Counter("toolshed_run_tool_calls", "Tool calls made by runs, by tool.", ["tool"], registry=REGISTRY)

_REASONS = {"TimeoutError": "timeout", "OutOfMemoryError": "oom", "KernelDied": "kernel_died"}


def record_execution(execution: Execution) -> None:
    EXECUTIONS.labels(execution.status).inc()
    EXECUTION_SECONDS.observe(execution.duration_ms / 1000)
    if execution.error is not None and execution.error.name in _REASONS:
        EXECUTION_FAILURES.labels(_REASONS[execution.error.name]).inc()
    if execution.kernel_restarted:
        KERNEL_RESTARTS.inc()
    exported = sum(1 for a in execution.artifacts if a.file_id is not None)
    ARTIFACTS.inc(exported)
    ARTIFACTS_SKIPPED.inc(len(execution.artifacts) - exported)


def record_run(status: str, seconds: float) -> None:
    RUNS.labels(status).inc()
    RUN_SECONDS.observe(seconds)


def record_model_call(seconds: float, prompt_tokens: int, completion_tokens: int) -> None:
    MODEL_CALL_SECONDS.observe(seconds)
    MODEL_TOKENS.labels("prompt").inc(prompt_tokens)
    MODEL_TOKENS.labels("completion").inc(completion_tokens)


class LifecycleMetrics:
    """The sandbox manager's LifecycleHooks, recorded as Prometheus metrics."""

    def acquired(self, source: str, seconds: float) -> None:
        ACQUIRE_SECONDS.labels(source).observe(seconds)

    def waited_for_capacity(self, seconds: float) -> None:
        CAPACITY_WAIT_SECONDS.observe(seconds)

    def reclaimed(self, reason: str) -> None:
        RECLAIMED.labels(reason).inc()


class EngineCollector:
    """Gauges read from the sandbox manager at scrape time; `manager` gives None while the engine is down."""

    def __init__(self, manager: Callable[[], SandboxManager | None]) -> None:
        self._manager = manager

    def collect(self) -> Iterator[Any]:
        manager = self._manager()
        sandboxes = GaugeMetricFamily("toolshed_sandboxes", "Sandboxes known to the engine, by status.",
                                      labels=["status"])
        counts = manager.status_counts() if manager is not None else {}
        for status in ("running", "expired"):
            sandboxes.add_metric([status], counts.get(status, 0))
        slots = GaugeMetricFamily("toolshed_sandbox_slots", "Live containers counted against the cap, and the cap.",
                                  labels=["kind"])
        slots.add_metric(["used"], manager.slots.used if manager is not None else 0)
        slots.add_metric(["limit"], manager.slots.limit if manager is not None else 0)
        pool_ready = GaugeMetricFamily("toolshed_pool_ready", "Warm sandboxes waiting to be handed out.")
        pool_ready.add_metric([], manager.pool.ready if manager is not None else 0)
        pool_takes = CounterMetricFamily("toolshed_pool_takes", "Sandbox creations, by whether the warm pool had one.",
                                         labels=["result"])
        pool_takes.add_metric(["hit"], manager.pool.hits if manager is not None else 0)
        pool_takes.add_metric(["miss"], manager.pool.misses if manager is not None else 0)
        yield from (sandboxes, slots, pool_ready, pool_takes)
