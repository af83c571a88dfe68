"""Peak memory of a command and every process it starts (the whole tree).

Two figures: the largest single process's peak (the kernel's ru_maxrss for
waited-for children) and the peak of the tree's memory: the sum of every
live process's proportional set size (PSS: a page shared by forked workers
counts once, split among them; RSS would count it in each), sampled from
/proc every few milliseconds. A sample can only miss a peak, never invent
one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

MEASURE = r"""
import json, os, resource, subprocess, sys, threading

def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

def tree(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out

proc = subprocess.Popen(sys.argv[1:])
peak_sum = 0
done = threading.Event()
def sample():
    global peak_sum
    while not done.wait(0.01):
        peak_sum = max(peak_sum, sum(pss_kib(p) for p in tree(proc.pid)))
thread = threading.Thread(target=sample)
thread.start()
code = proc.wait()
done.set()
thread.join()
single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": code, "tree_kib": peak_sum, "single_kib": single}))
"""


def measure(cmd: list[str], env: dict[str, str]) -> tuple[dict[str, int], str, str]:
    """Run ``cmd``; (figures, its stdout before the figures line, its stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]), "\n".join(lines[:-1]), proc.stderr


def traced_peak(fn: Callable[[], object]) -> int:
    """The most memory Python held at once while ``fn`` ran, in bytes
    (tracemalloc: Python's allocations, not a C library's own)."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
