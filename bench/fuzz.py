"""A longer schemathesis run than the suite's: the same conformance checks, more examples per operation.

Starts its own scripted model and server on loopback, runs schemathesis against /openapi.json with every check the
suite uses, in the suite's two parts (storage operations; executions, tool calls and runs with real ids), and
prints a JSON summary per part; the full reports are kept in bench/results/fuzz.txt.

Run: .venv/bin/python bench/fuzz.py [--examples 40] [--live-examples 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent] + [str(ROOT)]

from orchestrator.localserver import Server
from tests.scripted_model import ScriptedModel
from tests.test_fuzz import LIVE_PATHS, fuzz_command, live_config, server_settings

REPORT = ROOT / "bench" / "results" / "fuzz.txt"


def part(name: str, command: list[str]) -> tuple[dict[str, Any], str]:
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    counts = re.search(r"(\d+) generated, (\d+) (?:passed|found)", result.stdout)
    summary = {"part": name, "exit_code": result.returncode, "passed": result.returncode == 0,
               "generated": int(counts.group(1)) if counts else None,
               "seconds": round(time.monotonic() - started, 1),
               "summary": result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""}
    return summary, f"===== {name} =====\n{result.stdout}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--live-examples", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    model = ScriptedModel().start()
    work = Path(tempfile.mkdtemp(prefix="toolshed-fuzz-"))
    server = Server(work / "data", **server_settings(model))
    server.start()
    try:
        storage = part("storage", fuzz_command(server.base_url, args.examples, args.seed,
                                               "--exclude-path-regex", LIVE_PATHS))
        live = part("executions, tool calls and runs", fuzz_command(
            server.base_url, args.live_examples, args.seed, "--include-path-regex", LIVE_PATHS,
            config=live_config(server, work)))
    finally:
        server.stop()
        server.remove_containers()
        model.stop()
    REPORT.write_text(storage[1] + "\n" + live[1])
    print(json.dumps({"examples_per_operation": args.examples, "live_examples_per_operation": args.live_examples,
                      "seed": args.seed, "parts": [storage[0], live[0]]}, indent=1))
    sys.exit(0 if storage[0]["passed"] and live[0]["passed"] else 1)


if __name__ == "__main__":
    main()
