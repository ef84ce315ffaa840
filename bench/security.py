"""The security record: every attack of the battery, run now against real sandboxes, and whether it was contained.

The battery is the suite's tests marked `attack("what")` (tests/test_sandbox_security.py, test_hardening.py,
test_hostile_uploads.py, test_projects.py, ...); each fails if its protection is removed, and records what it saw.
This script runs exactly those tests with pytest, then prints one row per attack: the attack, contained (the
test passed) and the evidence, as JSON and as the Markdown table the README's "Security record" shows. The raw
JUnit report is kept beside the JSON.

Run: .venv/bin/python bench/security.py [--out bench/results/security.json]   (needs Docker and the image)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "security.json"


def rows_of(report: Path) -> list[dict[str, object]]:
    """One row per test case of the JUnit report: its attack, whether it passed, its evidence."""
    rows = []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        rows.append({"attack": properties.get("attack") or case.get("name"), "test": f"{case.get('classname')}::"
                     f"{case.get('name')}", "contained": not failed and not skipped,
                     "evidence": properties.get("evidence") or ("skipped" if skipped else "failed: see the report"),
                     "seconds": float(case.get("time") or 0)})
    return sorted(rows, key=lambda row: str(row["attack"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = args.out.with_suffix(".junit.xml")
    started = time.monotonic()
    # pytest's own report goes to stderr, so stdout is the JSON alone; xunit1 keeps recorded properties.
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "attack", "-p", "no:cacheprovider",
                    "-o", "junit_family=xunit1", f"--junitxml={report}", "tests"], cwd=ROOT, check=False,
                   stdout=sys.stderr, env={**os.environ, "TOOLSHED_REQUIRE_DOCKER": "1", "HF_HUB_OFFLINE": "1"})
    rows = rows_of(report)
    result = {"attacks": len(rows), "contained": sum(bool(row["contained"]) for row in rows),
              "seconds": round(time.monotonic() - started, 1), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print("\n| attack | contained | evidence |\n|---|---|---|", file=sys.stderr)
    for row in rows:
        evidence = str(row["evidence"]).replace("|", "\\|")
        print(f"| {row['attack']} | {'yes' if row['contained'] else '**NO**'} | {evidence} |", file=sys.stderr)
    sys.exit(0 if rows and result["contained"] == result["attacks"] else 1)


if __name__ == "__main__":
    main()
