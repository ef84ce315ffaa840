"""/metrics' word on which OCI runtime the sandboxes start under (gVisor's runsc or runc), read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from orchestrator.sandbox.gvisor import RuntimeChoice


class RuntimeCollector:
    """`toolshed_sandbox_runtime{runtime, wanted}` = 1 for the runtime in use; nothing while the engine is down.
    `fallback` is 1 when auto wanted gVisor and got runc."""

    def __init__(self, choice: Callable[[], RuntimeChoice | None]) -> None:
        self._choice = choice

    def collect(self) -> Iterator[Any]:
        choice = self._choice()
        runtime = GaugeMetricFamily("toolshed_sandbox_runtime", "The OCI runtime new sandboxes start under.",
                                    labels=["runtime", "wanted", "fallback"])
        if choice is not None:
            runtime.add_metric([choice.name, choice.wanted, "1" if choice.problem else "0"], 1)
        yield runtime
