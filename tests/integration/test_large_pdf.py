"""Large PDFs: past 100,000,000 bytes and past 2**31, in little memory.

A pyHanko user reported PDFs over 100 MB coming out corrupt while the tool
said success; offsets past 2**31 break 32-bit arithmetic. Both sizes are
signed here and checked by pdfsig, qpdf and pyHanko; the whole run (main
process and workers) must stay under 128 MiB resident.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.infra import REPO, SoftHsm
from support.pdfcheck import assert_signed_ok
from support.runner import cron_env

pytestmark = pytest.mark.softhsm

MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:])
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(peak_kib, proc.returncode)
"""


@pytest.mark.parametrize("size", [100_000_001, 2**31 + 50_000_000])
def test_large_pdf_signs_intact_in_bounded_memory(
    softhsm: SoftHsm, tmp_path: Path, size: int
) -> None:
    sys.path.insert(0, str(REPO / "fixtures"))
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
    peak_kib, code = (int(v) for v in proc.stdout.strip().splitlines()[-1].split())
    assert code == 0, proc.stderr
    report = json.loads("\n".join(proc.stdout.strip().splitlines()[:-1]))
    assert report["totals"]["signed"] == 1
    assert peak_kib <= 128 * 1024, f"peak RSS {peak_kib} KiB"
    assert out.stat().st_size > size
    src.unlink()  # room on disk for the referees' work
    assert_signed_ok(out)
