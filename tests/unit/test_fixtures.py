"""Generated fixtures are reproducible: regenerating them changes nothing."""

from __future__ import annotations

import subprocess
import sys

from support.infra import FIXTURES


def test_sample_documents_regenerate_byte_for_byte() -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_samples.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_decree30_documents_regenerate_byte_for_byte() -> None:
    """The reportlab and fpdf2 decisions in fixtures/nd30/ (the LibreOffice ones
    and the scan are made at test time: see fixtures/make_nd30_docs.py)."""
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_nd30_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
