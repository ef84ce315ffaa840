"""A longer schemathesis run than the suite's: the same conformance checks, more examples per operation.

Starts its own server on loopback (no pool, so generated container creations start cold sandboxes), runs
schemathesis against /openapi.json with every check the suite uses, and prints a JSON summary; the full report
is kept in bench/results/fuzz.txt.

Run: .venv/bin/python bench/fuzz.py [--examples 100] [--seed 7]
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent] + [str(ROOT)]

from orchestrator.localserver import Server
from tests.test_fuzz import CHECKS, SCHEMATHESIS

REPORT = ROOT / "bench" / "results" / "fuzz.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    server = Server(Path(tempfile.mkdtemp(prefix="toolshed-fuzz-")), TOOLSHED_POOL_SIZE="0")
    server.start()
    started = time.monotonic()
    try:
        result = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{server.base_url}/openapi.json", "--checks", CHECKS,
             "--max-examples", str(args.examples), "--request-timeout", "60", "--workers", "2",
             "--seed", str(args.seed), "--exclude-path-regex", "execute|tool_calls|/runs"],
            capture_output=True, text=True, check=False)
    finally:
        server.stop()
        server.remove_containers()
    REPORT.write_text(result.stdout)
    counts = re.search(r"(\d+) generated, (\d+) (?:passed|found)", result.stdout)
    print(json.dumps({"examples_per_operation": args.examples, "seed": args.seed, "exit_code": result.returncode,
                      "generated": int(counts.group(1)) if counts else None,
                      "passed": result.returncode == 0, "seconds": round(time.monotonic() - started, 1),
                      "summary": result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""}, indent=1))
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
