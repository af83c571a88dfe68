"""Large PDFs: past 100,000,000 bytes and past 2**31, in little memory.

A pyHanko user reported PDFs over 100 MB coming out corrupt while the tool
said success; offsets past 2**31 break 32-bit arithmetic. Both sizes are
signed here and checked by pdfsig, qpdf and pyHanko; the whole run (the main
process, its workers and any program they start) must stay under 128 MiB.

The whole run is measured from outside: a watcher samples /proc for the
process tree every few milliseconds and adds up the proportional set size
(PSS: a page shared by the forked workers counts once in total, as the
machine pays for it). The kernel's own peak (ru_maxrss) of the largest
single process is checked as well, since a sample can miss a short peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.infra import FIXTURES, SoftHsm
from support.pdfcheck import assert_signed_ok
from support.runner import cron_env

pytestmark = pytest.mark.softhsm

MEASURE = r"""
import json, os, resource, subprocess, sys, time

def tree(root):
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

def kib(pid, field):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)
peak = {"pss_kib": 0, "rss_kib": 0, "processes": 0, "samples": 0}
while proc.poll() is None:
    pids = tree(proc.pid)
    peak["pss_kib"] = max(peak["pss_kib"], sum(kib(p, "Pss") for p in pids))
    peak["rss_kib"] = max(peak["rss_kib"], sum(kib(p, "Rss") for p in pids))
    peak["processes"] = max(peak["processes"], len(pids))
    peak["samples"] += 1
    time.sleep(0.005)
out = proc.stdout.read()
peak["largest_maxrss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
peak["returncode"] = proc.returncode
sys.stdout.write(out.decode() + "\n" + json.dumps(peak) + "\n")
"""


@pytest.mark.timeout(1800)  # writing, signing and checking 2 GiB on a slow disk
@pytest.mark.parametrize("size", [100_000_001, 2**31 + 50_000_000])
def test_large_pdf_signs_intact_in_bounded_memory(
    softhsm: SoftHsm, tmp_path: Path, size: int
) -> None:
    sys.path.insert(0, str(FIXTURES))
    from make_large_pdf import write_large_pdf

    src = tmp_path / "big.pdf"
    assert write_large_pdf(src, size) >= size
    out = tmp_path / "big_signed.pdf"
    env = cron_env(softhsm, tmp_path / "state")
    cmd = [
        sys.executable,
        "-m",
        "signkit",
        "sign",
        "pdf",
        str(src),
        "-o",
        str(out),
        "--module",
        softhsm.module,
        "--token-label",
        "signkit-test-a",
        "--key-label",
        "signer-rsa2048",
        "--revocation",
        "off",
        "--json",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], env=env, capture_output=True, text=True, check=False
    )
    *lines, last = proc.stdout.strip().splitlines()
    peak = json.loads(last)
    assert peak["returncode"] == 0, proc.stderr
    report = json.loads("\n".join(lines))
    assert report["totals"]["signed"] == 1
    print(f"memory of the whole run, {size} bytes: {peak}")
    # the watcher saw the workers (one per CPU) and took many samples
    assert peak["processes"] >= 2 and peak["samples"] >= 20, peak
    assert peak["pss_kib"] <= 128 * 1024, f"whole run: {peak}"
    assert peak["largest_maxrss_kib"] <= 128 * 1024, f"largest process: {peak}"
    assert out.stat().st_size > size
    src.unlink()  # room on disk for the referees' work
    assert_signed_ok(out)
