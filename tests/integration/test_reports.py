"""Verification reports for people: `signkit verify --report-format pdf|html`,
rendered as a person sees them (pdftoppm for the PDF, headless Chromium for
the HTML), their text read back with pdftotext, in Vietnamese and English.
The PDF report embeds every font, identifies itself as PDF/A-2b, and can be
signed by `sign pdf` (pdfsig judges the result)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.infra import FIXTURES, PkiServices, SoftHsm
from support.pdfcheck import pdfsig
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


@pytest.fixture
def documents(signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A PDF with a visible signature, a detached CAdES, a PDF altered after signing."""
    docs = tmp_path / "docs"
    docs.mkdir()
    shutil.copy(FIXTURES / "samples" / "decision.pdf", docs / "decision.pdf")
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    common = ("--trust", str(trust), "--no-audit")
    proc = signkit(
        "sign", "pdf", str(docs / "decision.pdf"), "-o", str(docs / "signed.pdf"),
        "--rect", "110,40,75,22", "--token-label", "signkit-demo", *common, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (docs / "decision.pdf").unlink()
    shutil.copy(FIXTURES / "samples" / "attachment.pdf", docs / "phu-luc.docx")
    proc = signkit(
        "sign", "cms", str(docs / "phu-luc.docx"), "--token-label", "signkit-test-a",
        "--key-label", "signer-rsa2048", *common, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tampered = bytearray((docs / "signed.pdf").read_bytes())
    tampered[len(tampered) // 3] ^= 0x01  # inside the signed page content
    (docs / "tampered.pdf").write_bytes(bytes(tampered))
    return docs


def report(signkit: Runner, trust: Path, docs: Path, fmt: str, lang: str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return signkit(
        "--lang", lang, "verify", str(docs), "--trust", str(trust), "--no-audit",
        "--report-format", fmt, "--report", str(out), *extra,
    )  # fmt: skip


def chromium(tmp: Path, page: Path, *args: str) -> None:
    """Headless Chromium on ``page`` (a screenshot or a print to PDF)."""
    subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'chromium'}", *args,
         page.as_uri()],
        capture_output=True, timeout=120, check=True, env={**os.environ, "HOME": str(tmp)},
    )  # fmt: skip


def pdftotext(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    ).stdout


def test_pdf_report_in_both_languages(
    documents: Path, signkit: Runner, trust: Path, tmp_path: Path, softhsm: SoftHsm
) -> None:
    vi, en = tmp_path / "bao-cao.pdf", tmp_path / "report.pdf"
    proc = report(signkit, trust, documents, "pdf", "vi", vi)
    assert proc.returncode == 1, proc.stderr  # the tampered document fails
    assert report(signkit, trust, documents, "pdf", "en", en).returncode == 1
    text = pdftotext(vi)
    for words in (
        "Báo cáo kiểm tra chữ ký số", "HỢP LỆ", "KHÔNG HỢP LỆ", "Người ký", "Tổ chức",
        "Nguyễn Văn An", "Ủy ban nhân dân tỉnh Nam Định", "Chữ ký 1", "chưa bị thu hồi",
        "Chuỗi chứng thư số", "Phạm vi được ký", "tệp phu-luc.docx", "Các trang có chữ ký",
        "+07:00", "signed.pdf", "tampered.pdf",
    ):  # fmt: skip
        assert words in text, words
    assert re.search(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2} \+07:00", text)  # display zone
    english = pdftotext(en)
    for words in ("Signature verification report", "VALID", "INVALID", "Signer", "Organisation"):
        assert words in english, words
    # One page per document (3), fonts embedded, PDF/A-2b identification.
    pages = subprocess.run(["pdfinfo", str(vi)], capture_output=True, text=True).stdout
    assert re.search(r"Pages:\s+3\b", pages), pages
    fonts = subprocess.run(["pdffonts", str(vi)], capture_output=True, text=True).stdout
    rows = fonts.splitlines()[2:]
    assert rows and all(" yes yes " in row for row in rows), fonts
    data = vi.read_bytes()
    assert b"<pdfaid:part>2</pdfaid:part>" in data and b"/OutputIntents" in data
    assert subprocess.run(["qpdf", "--check", str(vi)], capture_output=True).returncode == 0
    # Rendered: the first page, with the signed page's thumbnail, is not blank.
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(vi), str(tmp_path / "p")], check=True)
    rendered = sorted(tmp_path.glob("p-*.png"))
    assert len(rendered) == 3
    from PIL import Image

    with Image.open(rendered[0]) as page:
        colours = page.convert("RGB").getcolors(1 << 20)
        assert colours is not None and len(colours) > 50  # text, the green verdict, the thumbnail
        assert any(g > 100 and r < 60 and b < 80 for _n, (r, g, b) in colours)  # the green badge
    # The report itself can be signed.
    signed = tmp_path / "bao-cao-signed.pdf"
    proc = signkit(
        "sign", "pdf", str(vi), "-o", str(signed), "--trust", str(trust), "--no-audit",
        "--token-label", "signkit-test-a", "--key-label", "signer-rsa2048",
        env={"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Signature is Valid" in pdfsig(signed)


def test_html_report_is_one_file_and_renders(
    documents: Path, signkit: Runner, trust: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    assert report(signkit, trust, documents, "html", "vi", out).returncode == 1
    page = out.read_text(encoding="utf-8")
    # self-contained: no link to anything outside the file
    assert not re.search(r"(?:src|href)=\"(?!data:)", page)
    assert "url(data:font/ttf;base64," in page and "data:image/png;base64," in page
    for words in ("HỢP LỆ", "KHÔNG HỢP LỆ", "Nguyễn Văn An", "Chữ ký 1"):
        assert words in page
    shot = tmp_path / "report.png"
    chromium(tmp_path, out, "--window-size=900,1400", f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (900, 1400)
        colours = image.convert("RGB").getcolors(1 << 20)
        assert colours is not None and len(colours) > 50
    # What the browser draws, read back: Chromium prints the page, pdftotext reads it
    # (the inlined font covers the Vietnamese letters); English, in another zone.
    printed = tmp_path / "report-vi.pdf"
    chromium(tmp_path, out, "--no-pdf-header-footer", f"--print-to-pdf={printed}")
    text = pdftotext(printed)
    for words in (
        "Báo cáo kiểm tra chữ ký số", "HỢP LỆ", "KHÔNG HỢP LỆ", "Người ký", "Tổ chức",
        "Nguyễn Văn An", "Ủy ban nhân dân tỉnh Nam Định", "Chuỗi chứng thư số", "+07:00",
    ):  # fmt: skip
        assert words in text, words
    english = tmp_path / "report-en.html"
    proc = report(signkit, trust, documents, "html", "en", english, "--timezone", "UTC")
    assert proc.returncode == 1, proc.stderr
    printed = tmp_path / "report-en.pdf"
    chromium(tmp_path, english, "--no-pdf-header-footer", f"--print-to-pdf={printed}")
    text = pdftotext(printed)
    for words in (
        "Signature verification report", "VALID", "INVALID", "Signer", "Organisation",
        "Certificate chain", "not revoked", "Nguyễn Văn An", "+00:00",
    ):  # fmt: skip
        assert words in text, words
    assert "+07:00" not in text
    # --report-dir: one file per document.
    each = tmp_path / "each"
    proc = signkit(
        "verify", str(documents), "--trust", str(trust), "--no-audit", "--report-format", "html",
        "--report-dir", str(each),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert sorted(p.name for p in each.iterdir()) == [
        "phu-luc.docx.p7s.report.html",
        "signed.pdf.report.html",
        "tampered.pdf.report.html",
    ]


def signature_field_rect(pdf: Path) -> tuple[str, list[float]]:
    """(name, /Rect) of the document's signature field, as qpdf reads the objects."""
    import json

    out = subprocess.run(
        ["qpdf", "--json=2", "--json-key=qpdf", str(pdf)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    objects = json.loads(out)["qpdf"][1]
    fields = [
        o["value"]
        for o in objects.values()
        if isinstance(o.get("value"), dict) and o["value"].get("/FT") == "/Sig"
    ]
    assert len(fields) == 1, fields
    return fields[0]["/T"].removeprefix("u:"), [float(v) for v in fields[0]["/Rect"]]


def test_thumbnail_outlines_and_numbers_the_signature_field_where_it_is(
    documents: Path, tmp_path: Path
) -> None:
    """The signed page drawn for the report: the field's outline lies on the
    field's /Rect (read by qpdf, scaled to the thumbnail), its number in a
    badge at the top-left corner."""
    from PIL import Image

    from signkit.verify.thumbnails import WIDTH, render

    signed = documents / "signed.pdf"
    name, (x0, y0, x1, y1) = signature_field_rect(signed)
    box = subprocess.run(["pdfinfo", "-box", str(signed)], capture_output=True, text=True).stdout
    found = re.search(r"CropBox:\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", box)
    assert found is not None, box
    crop = [float(v) for v in found.groups()]
    scale = WIDTH / (crop[2] - crop[0])
    left, right = (x0 - crop[0]) * scale, (x1 - crop[0]) * scale
    top, bottom = (crop[3] - y1) * scale, (crop[3] - y0) * scale
    (thumb,) = render(signed, [name])
    assert thumb.page == 1 and thumb.fields == [(1, name)]
    shot = tmp_path / "thumb.png"
    shot.write_bytes(thumb.png)
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        red = {
            (x, y)
            for x in range(rgb.width)
            for y in range(rgb.height)
            if rgb.getpixel((x, y)) == (200, 30, 45)
        }
        # Nothing red but the outline and its badge (above the top-left corner).
        assert red and all(left - 2 <= x <= right + 2 for x, _ in red), (left, right)
        assert all(top - 30 <= y <= bottom + 2 for _, y in red), (top, bottom)
        assert all(x <= left + 30 for x, y in red if y < top - 2)

        def drawn(x: float, y: float) -> bool:
            return any(
                (round(x) + dx, round(y) + dy) in red for dx in (-1, 0, 1) for dy in (-1, 0, 1)
            )

        for x in range(round(left) + 32, round(right) - 2):  # top and bottom edges
            assert drawn(x, top) and drawn(x, bottom), x
        for y in range(round(top) + 2, round(bottom) - 2):  # both sides, not filled
            assert drawn(left, y) and drawn(right, y), y
            assert not drawn((left + right) / 2, y)
        # The number: a filled badge above the top-left corner with white text in it.
        badge = [(x, y) for x, y in red if y < top - 1 and x <= left + 30]
        assert len(badge) > 100, len(badge)
        bx0, bx1 = min(x for x, _ in badge), max(x for x, _ in badge)
        by0, by1 = min(y for _, y in badge), max(y for _, y in badge)
        white = [
            (x, y)
            for x in range(bx0, bx1 + 1)
            for y in range(by0, by1 + 1)
            if rgb.getpixel((x, y)) == (255, 255, 255)
        ]
        assert white, "no number in the badge"
