"""Referees for signed PDFs: pyHanko's validator, poppler's pdfsig, qpdf --check."""

from __future__ import annotations

import html
import re
import subprocess
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
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


# ------------------------------------------------------------ positions on the page
# Expected positions come from poppler (pdftotext -bbox) and from pixels
# (pdftoppm), never from signkit's own text search.


@dataclass(frozen=True)
class Word:
    """A word as poppler reads it, in points from the top-left of the page as shown."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float


_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
)


def poppler_words(pdf: Path, page: int = 1) -> list[Word]:
    """Every word pdftotext -bbox finds on ``page`` (NFC text)."""
    proc = subprocess.run(
        ["pdftotext", "-bbox", "-f", str(page), "-l", str(page), str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [
        Word(unicodedata.normalize("NFC", html.unescape(t)), *(float(v) for v in (a, b, c, d)))
        for a, b, c, d, t in _WORD.findall(proc.stdout)
    ]


def poppler_word(pdf: Path, text: str, page: int = 1) -> Word:
    """The one word (poppler's word: often a whole line) that is exactly ``text``."""
    hits = [w for w in poppler_words(pdf, page) if w.text == text]
    assert len(hits) == 1, (text, [w.text for w in poppler_words(pdf, page)])
    return hits[0]


def new_words(before: Path, after: Path, page: int = 1) -> list[Word]:
    """Words on ``after``'s page that ``before``'s page does not have."""
    old = {(w.text, round(w.x0), round(w.y0)) for w in poppler_words(before, page)}
    return [w for w in poppler_words(after, page) if (w.text, round(w.x0), round(w.y0)) not in old]


@dataclass(frozen=True)
class Raster:
    """A page rendered by pdftoppm: ``dpi / 72`` pixels per point, RGB."""

    width: int
    height: int
    pixels: bytes
    scale: float

    def rgb(self, x: int, y: int) -> tuple[int, int, int]:
        i = 3 * (y * self.width + x)
        return self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]


def render(pdf: Path, stem: Path, *, page: int = 1, dpi: int = 144) -> Raster:
    """Page ``page`` of ``pdf`` as poppler draws it (annotations included)."""
    subprocess.run(
        [
            *("pdftoppm", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile"),
            *(str(pdf), str(stem)),
        ],
        check=True,
    )
    data = stem.with_suffix(".ppm").read_bytes()
    magic, size, depth, rest = data.split(b"\n", 3)
    assert magic == b"P6" and depth == b"255", magic
    width, height = (int(v) for v in size.split())
    return Raster(width, height, rest, dpi / 72)


def ink_box(
    raster: Raster,
    is_ink: Callable[[tuple[int, int, int]], bool],
    *,
    than: Raster | None = None,
    region: tuple[float, float, float, float] | None = None,
) -> tuple[float, float, float, float] | None:
    """Bounding box (points, top-left origin) of the pixels that are ink, or,
    with ``than``, of the ink that differs from ``than`` (what was drawn since);
    only within ``region`` (points) when given."""
    s = raster.scale
    x0, y0, x1, y1 = region or (0, 0, raster.width / s, raster.height / s)
    xs: list[int] = []
    ys: list[int] = []
    for y in range(max(0, int(y0 * s)), min(raster.height, int(y1 * s) + 1)):
        for x in range(max(0, int(x0 * s)), min(raster.width, int(x1 * s) + 1)):
            pixel = raster.rgb(x, y)
            if is_ink(pixel) and (than is None or than.rgb(x, y) != pixel):
                xs.append(x)
                ys.append(y)
    if not xs:
        return None
    return min(xs) / s, min(ys) / s, (max(xs) + 1) / s, (max(ys) + 1) / s


def ink_runs(
    raster: Raster,
    top: float,
    bottom: float,
    *,
    gap: float,
    than: Raster | None = None,
) -> list[tuple[float, float]]:
    """Horizontal extents (points) of the ink between ``top`` and ``bottom``,
    columns less than ``gap`` points apart merged: the words of a line and the
    blanks between them, as a reader sees them. With ``than``: only the ink
    that differs from that rendering."""
    s = raster.scale
    rows = range(int(top * s), min(raster.height, int(bottom * s) + 1))
    columns = []
    for x in range(raster.width):
        for y in rows:
            pixel = raster.rgb(x, y)
            if sum(pixel) < 3 * 160 and (than is None or than.rgb(x, y) != pixel):
                columns.append(x)
                break
    runs: list[list[int]] = []
    for x in columns:
        if runs and x - runs[-1][1] <= gap * s:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    return [(a / s, (b + 1) / s) for a, b in runs]


def openssl_document_timestamp(path: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """`openssl ts -verify` of the last signature of ``path``, a document
    time-stamp (poppler 22 cannot validate those): its token, from the bytes
    between the signed ranges pdfsig reports, over the bytes of those ranges."""
    blocks = pdfsig(path).split("Signature #")[1:]
    found = re.search(r"Signed Ranges: \[(\d+) - (\d+)\], \[(\d+) - (\d+)\]", blocks[-1])
    assert found is not None, blocks[-1]
    a, b, c, d = (int(v) for v in found.groups())
    data = path.read_bytes()
    hex_token = data[b:c].strip(b"<>").decode()
    token = bytes.fromhex(hex_token)
    assert token[0] == 0x30 and token[1] & 0x80, "the token is a DER SEQUENCE"
    size_bytes = token[1] & 0x7F
    length = 2 + size_bytes + int.from_bytes(token[2 : 2 + size_bytes], "big")
    (tmp / "doc-ts.der").write_bytes(token[:length])  # the rest is the zero padding
    (tmp / "doc-ts.data").write_bytes(data[a:b] + data[c:d])
    chain = tmp / "doc-ts-chain.pem"
    chain.write_text("".join(_pem(pki_certificate(n)) for n in ("root-ca", "interm-ca")))
    return subprocess.run(
        [
            *("openssl", "ts", "-verify", "-data", str(tmp / "doc-ts.data")),
            *("-in", str(tmp / "doc-ts.der"), "-token_in"),
            *("-CAfile", str(chain), "-untrusted", str(chain)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
