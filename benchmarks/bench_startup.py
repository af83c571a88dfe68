"""Start-up time of `signkit --help` and `--version` (budget: 150 ms median).

Baseline: a bare `python -c pass` of the same interpreter, run interleaved
in the same loop so machine noise hits both alike. Prints medians and the
ratio to the baseline.

    python benchmarks/bench_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUDGET_MS = 150.0


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    signkit = str(Path(sys.executable).with_name("signkit"))
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "signkit --version": [signkit, "--version"],
        "signkit --help": [signkit, "--help"],
    }
    for cmd in cases.values():  # warm the page cache and .pyc files
        _time(cmd)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, cmd in cases.items():
            times[name].append(_time(cmd))
    py = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {py}")
    base = statistics.median(times["python -c pass (baseline)"])
    worst = 0.0
    for name, values in times.items():
        med = statistics.median(values)
        if name.startswith("signkit"):
            worst = max(worst, med)
        print(
            f"{name:30} median {med:7.1f} ms  (min {min(values):.1f}, max {max(values):.1f}, "
            f"x{med / base:.2f} baseline)"
        )
    verdict = "within" if worst <= BUDGET_MS else "OVER"
    print(f"budget {BUDGET_MS:.0f} ms: {verdict} (worst median {worst:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
