"""Generated fixtures are reproducible: regenerating them changes nothing."""

from __future__ import annotations

import subprocess
import sys

from support.infra import REPO


def test_sample_documents_regenerate_byte_for_byte() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "fixtures" / "make_samples.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
