"""Signing one large PDF against the disk's own pace, on a real SoftHSM token.

    python benchmarks/bench_large_pdf.py                 # 2 GiB, 3 runs
    python benchmarks/bench_large_pdf.py --size 300000000 --runs 1   # a smoke run

Baseline, measured in the same run on the same file, interleaved with
signkit so machine noise hits both alike: `cp` of the file to the output
directory plus `sha256sum` of it (what any tool that copies and fingerprints
a file pays). signkit runs the real command with its bookkeeping on (durable
writes, the audit log, the JSON report); its peak memory is the proportional
set size (PSS) of the whole process tree, sampled from /proc, and the
largest single process's ru_maxrss. Goals: wall <= 2 x (cp + sha256sum),
peak <= 128 MiB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOKEN, KEY = "signkit-test-a", "signer-rsa2048"
sys.path.insert(0, str(REPO / "fixtures"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_sign_pdf import build_token  # noqa: E402
from make_large_pdf import write_large_pdf  # noqa: E402


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass  # it ended between two reads
    return pids


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and the peak PSS (KiB) of the whole process tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(_pss_kib(p) for p in _tree(proc.pid)))
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr is not None else ""
        sys.exit(f"signkit failed ({proc.returncode}): {err[-2000:]}")
    return wall, peak


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2 << 30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="signkit-bench-large-"))
    try:
        env, module, pin = build_token(base)
        src = base / "big.pdf"
        size = write_large_pdf(src, args.size)
        print(f"{os.cpu_count()} CPUs, one PDF of {size:,} bytes, SoftHSM RSA-2048")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        base_t: list[float] = []
        ours: list[float] = []
        peaks: list[int] = []
        copy = base / "copy.pdf"
        out = base / "signed.pdf"
        timed(["sha256sum", str(src)])  # the same page-cache state for every run
        for run in range(args.runs):
            copy.unlink(missing_ok=True)
            base_t.append(timed(["cp", str(src), str(copy)]) + timed(["sha256sum", str(copy)]))
            copy.unlink()
            out.unlink(missing_ok=True)
            cmd = [
                str(BIN / "signkit"),
                "sign",
                "pdf",
                str(src),
                "-o",
                str(out),
                "--module",
                module,
                "--token-label",
                TOKEN,
                "--key-label",
                KEY,
                "--revocation",
                "off",
                "--audit-log",
                str(base / "audit.jsonl"),
                "--report",
                str(base / "report.json"),
                "-q",
            ]
            wall, peak = run_measured(cmd, {**env, "SIGNKIT_PIN": pin})
            ours.append(wall)
            peaks.append(peak)
            print(
                f"run {run + 1}: cp + sha256sum {base_t[-1]:.2f} s, signkit {wall:.2f} s, "
                f"peak PSS {peak / 1024:.0f} MiB"
            )
        largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        b, k = statistics.median(base_t), statistics.median(ours)
        print(f"cp + sha256sum     {b:7.2f} s  (median of {args.runs})")
        print(f"signkit sign pdf   {k:7.2f} s  (median of {args.runs})")
        print(f"ratio: x{k / b:.2f} the time of cp + sha256sum  (goal <= 2)")
        print(
            f"peak memory: whole tree PSS {max(peaks) / 1024:.0f} MiB, largest process "
            f"{largest / 1024:.0f} MiB (goal <= 128 MiB)"
        )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
