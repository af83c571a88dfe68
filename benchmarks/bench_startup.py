"""Start-up time of the commands people and scripts run first.

Budgets (medians): `signkit --help` and `--version` 150 ms, `signkit sign pdf
--help` (the largest option list) 250 ms. Baseline: a bare `python -c pass`
of the same interpreter, run interleaved in the same loop so machine noise
hits every case alike. Prints medians, the ratio to the baseline and whether
each case is within its budget (exit 1 when one is over).

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


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    signkit = str(Path(sys.executable).with_name("signkit"))
    # name -> (command, budget in ms or None)
    cases: dict[str, tuple[list[str], float | None]] = {
        "python -c pass (baseline)": ([sys.executable, "-c", "pass"], None),
        "signkit --version": ([signkit, "--version"], 150.0),
        "signkit --help": ([signkit, "--help"], 150.0),
        "signkit sign pdf --help": ([signkit, "sign", "pdf", "--help"], 250.0),
    }
    for cmd, _budget in cases.values():  # warm the page cache and .pyc files
        _time(cmd)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):
        for name, (cmd, _budget) in cases.items():
            times[name].append(_time(cmd))
    py = platform.python_version()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {py}")
    base = statistics.median(times["python -c pass (baseline)"])
    over = []
    for name, values in times.items():
        med = statistics.median(values)
        budget = cases[name][1]
        verdict = ""
        if budget is not None:
            verdict = f"  budget {budget:.0f} ms: {'within' if med <= budget else 'OVER'}"
            if med > budget:
                over.append(name)
        print(
            f"{name:26} median {med:7.1f} ms  (min {min(values):.1f}, max {max(values):.1f}, "
            f"x{med / base:.2f} baseline){verdict}"
        )
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
