"""How long `import mosaic_storage` takes, against the interpreter's own start-up, and what it pulls in.

Run: python benchmarks/import_time.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "numpy", "psycopg", "redis", "pgvector", "pgserver")
BUDGET_MS = 150.0


def import_total_ms(module: str) -> float:
    """Cumulative microseconds of ``module``'s import as reported by -X importtime, in ms."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    for line in reversed(out.splitlines()):
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1]) / 1000
    raise RuntimeError(f"no importtime line for {module}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    ours = [import_total_ms("mosaic_storage") for _ in range(args.runs)]
    anchor = [import_total_ms("json") for _ in range(args.runs)]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, mosaic_storage; print([m for m in {HEAVY!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    median = statistics.median(ours)
    print(f"import mosaic_storage: median {median:.1f} ms, p90 {sorted(ours)[int(0.9 * len(ours))]:.1f} ms")
    print(f"anchor `import json`:  median {statistics.median(anchor):.1f} ms")
    print(f"ratio to the {BUDGET_MS:.0f} ms budget: {median / BUDGET_MS:.2f}x")
    print(f"heavy modules loaded: {loaded}")


if __name__ == "__main__":
    main()
