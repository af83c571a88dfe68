"""Referees for signed PDFs: pyHanko's validator, poppler's pdfsig, qpdf --check."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from support.infra import pki_certificate


def pdfsig(path: Path) -> str:
    """pdfsig's report (it exits non-zero on some valid files, so read the text)."""
    proc = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr


def qpdf_ok(path: Path) -> bool:
    """qpdf --check exit 0 (3 is 'warnings', which also fails here)."""
    return (
        subprocess.run(["qpdf", "--check", str(path)], capture_output=True, check=False).returncode
        == 0
    )


def validate(path: Path, *, offline_dss: bool = False) -> list[Any]:
    """pyHanko's status for every regular signature, trusting only the test root."""
    from asn1crypto import x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.dss import DocumentSecurityStore
    from pyhanko_certvalidator import ValidationContext

    root = x509.Certificate.load(pki_certificate("root-ca"))
    interm = x509.Certificate.load(pki_certificate("interm-ca"))
    statuses = []
    with path.open("rb") as fh:
        reader = PdfFileReader(fh)
        for sig in reader.embedded_regular_signatures:
            if offline_dss:
                dss = DocumentSecurityStore.read_dss(reader)
                vc = dss.as_validation_context(
                    {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
                )
            else:
                vc = ValidationContext(
                    trust_roots=[root], other_certs=[interm], allow_fetching=False
                )
            statuses.append(validate_pdf_signature(sig, vc, ts_validation_context=vc))
    return statuses


def assert_signed_ok(path: Path, *, signatures: int = 1, offline_dss: bool = False) -> list[Any]:
    """Every referee agrees: intact, valid, trusted; pdfsig and qpdf happy."""
    assert path.exists(), path
    assert qpdf_ok(path), f"qpdf --check failed on {path}"
    report = pdfsig(path)
    assert report.count("Signature is Valid") >= signatures, report
    statuses = validate(path, offline_dss=offline_dss)
    assert len(statuses) == signatures, statuses
    for st in statuses:
        assert st.intact and st.valid and st.trusted, st.pretty_print_details()
    return statuses


def _pgm(path: Path) -> tuple[int, int, bytes]:
    parts = path.read_bytes().split(b"\n", 3)
    width, height = (int(v) for v in parts[1].split())
    return width, height, parts[3]


def changed_pixels(
    before: Path, after: Path, rect: tuple[float, float, float, float], page_h: float
) -> tuple[int, int]:
    """Pixels the signature changed inside its box, and anywhere outside it."""
    width, height, old = _pgm(before)
    _, _, new = _pgm(after)
    x1, y1, x2, y2 = rect
    top, bottom, left, right = int(page_h - y2) - 1, int(page_h - y1) + 1, int(x1) - 1, int(x2) + 1
    inside = outside = 0
    for y in range(height):
        row = y * width
        for x in range(width):
            if abs(old[row + x] - new[row + x]) <= 64:
                continue
            if left <= x <= right and top <= y <= bottom:
                inside += 1
            else:
                outside += 1
    return inside, outside
