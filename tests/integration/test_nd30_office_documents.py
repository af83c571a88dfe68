"""Decree 30 presets on documents nobody here made: reportlab, fpdf2 and
LibreOffice decisions with every kind of blank, 13/14 pt, italics, one and
two pages, a tight signature block, a scanned copy (fixtures/make_nd30_docs.py).

Positions are judged from the page only: poppler's word boxes (pdftotext
-bbox) for the printed labels, and pdftoppm's pixels for where the printed
letters are and where the signatures drew; never signkit's own numbers.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.infra import FIXTURES
from support.pdfcheck import (
    Raster,
    Word,
    assert_signed_ok,
    ink_box,
    new_words,
    poppler_words,
    render,
)
from support.runner import wrapped

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
ND30 = FIXTURES / "nd30"
LEADER = ["--token-label", "signkit-test-b", "--key-label", "leader-vn"]
CLERK = ["--token-label", "signkit-test-b", "--key-label", "clerk-vn"]
MM = 72 / 25.4
DPI = 144


def _load_maker():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "make_nd30_docs", ND30.parent / "make_nd30_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_nd30_docs"] = module
    spec.loader.exec_module(module)
    return module


MAKER = _load_maker()
COMMITTED = [d.name for d in MAKER.DECISIONS]
OFFICE = [d.name for d in MAKER.OFFICE]
FACTS = {d.name: d for d in (*MAKER.DECISIONS, *MAKER.OFFICE)}


@pytest.fixture(scope="session")
def office_pdfs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The LibreOffice-exported decisions and the scanned copy, made now."""
    made: dict[str, Path] = MAKER.office_documents(tmp_path_factory.mktemp("office"))
    return made


@pytest.fixture
def document(request: pytest.FixtureRequest, office_pdfs: dict[str, Path]) -> Path:
    name: str = request.param
    return office_pdfs[name] if name in office_pdfs else ND30 / f"{name}.pdf"


@pytest.fixture
def sk(sk, trust: Path):  # type: ignore[no-untyped-def]
    def run(*args: str, **kw):  # type: ignore[no-untyped-def]
        return sk(*args, "--trust", str(trust), **kw)

    return run


FIXED_CLOCK = """
from datetime import datetime

import signkit.formats.pdf.prepare as prepare


class Clock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.fromisoformat("2026-03-09T08:30:00+07:00").astimezone(tz)


prepare.datetime = Clock
"""


# ------------------------------------------------- the page, as poppler and pixels see it


def word(pdf: Path, text: str, page: int = 1) -> Word:
    """The first word poppler reads as exactly ``text``, or ending in it."""
    words = poppler_words(pdf, page)
    hits = [w for w in words if w.text == text] or [w for w in words if w.text.endswith(text)]
    assert hits, (text, [w.text for w in words])
    return hits[0]


def dark(pixel: tuple[int, int, int]) -> bool:
    return sum(pixel) < 3 * 160


def letter_groups(
    raster: Raster, top: float, bottom: float, size: float, cap: float | None = None
) -> list[tuple[float, float]]:
    """Horizontal extents (points) of the printed letters on a line: columns
    with ink above ``cap`` (default: the line's middle; dots and underscores
    stay below it), merged when closer than a fifth of an em (a word)."""
    s = raster.scale
    cap = cap if cap is not None else bottom - (bottom - top) * 0.55
    columns = []
    for x in range(raster.width):
        for y in range(int(top * s), int(cap * s)):
            if dark(raster.rgb(x, y)):
                columns.append(x)
                break
    runs: list[list[int]] = []
    for x in columns:
        if runs and x - runs[-1][1] <= 0.2 * size * s:
            runs[-1][1] = x
        else:
            runs.append([x, x])
    return [(a / s, (b + 1) / s) for a, b in runs]


def next_group(groups: list[tuple[float, float]], after: float) -> tuple[float, float]:
    """The first group of letters starting right of ``after``."""
    return min((g for g in groups if g[0] > after + 0.5), key=lambda g: g[0])


def line_band(pdf: Path) -> tuple[float, float]:
    """Top and bottom of the number and date line (poppler's box of 'Số:', widened)."""
    label = word(pdf, "Số:")
    return label.y0 - 3, label.y1 + 3


def new_ink(
    after: Raster, before: Raster, region: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    box = ink_box(after, dark, than=before, region=region)
    assert box is not None, "nothing was drawn on the line"
    return box


def ink_height(raster: Raster, region: tuple[float, float, float, float]) -> tuple[float, float]:
    """(top, bottom) of the ink within ``region``."""
    box = ink_box(raster, dark, region=region)
    assert box is not None, region
    return box[1], box[3]


# ------------------------------------------------------------------ number and date

TEXT_DOCS = COMMITTED + OFFICE
# which blanks each preset fills: the number's, the day's, the month's
FILLS = {"nd30-number-date": (0, 1, 2), "nd30-date": (1, 2), "nd30-number": (0,)}


@pytest.mark.parametrize("preset", list(FILLS))
@pytest.mark.parametrize("document", TEXT_DOCS, indirect=True)
def test_number_and_date_land_in_the_blanks(
    sk, document: Path, preset: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    facts = FACTS[document.stem]
    fills = FILLS[preset]
    out = tmp_path / "stamped.pdf"
    number = ["--doc-number", "101/QĐ-UBND"] if 0 in fills else []
    proc = sk(
        str(document), *CLERK, "-o", str(out), "--preset", preset, *number,
        program=wrapped(tmp_path, FIXED_CLOCK),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out, signatures=2 if preset == "nd30-number-date" else 1)

    # what a reader's tool extracts: the number, day 09 and month 3 (Decree 30 form)
    added = [w.text for w in sorted(new_words(document, out), key=lambda w: w.x0)]
    assert ("101" in added) == (0 in fills), added
    assert ("09" in added and "3" in added) == (1 in fills), added

    top, bottom = line_band(document)
    before = render(document, tmp_path / "before", dpi=DPI)
    after = render(out, tmp_path / "after", dpi=DPI)
    size = facts.size
    groups = letter_groups(before, top, bottom, size)
    number_label = word(document, "Số:")
    day_label = word(document, "ngày")
    month_label = word(document, "tháng")
    year_label = word(document, "năm")
    digits_2026 = next_group(groups, year_label.x1)
    year_top, year_bottom = ink_height(before, (digits_2026[0], top, digits_2026[1], bottom))
    # letters are what rises above the middle of the digits' height
    groups = letter_groups(before, top, bottom, size, cap=(year_top + year_bottom) / 2)
    every_blank = [
        (number_label.x1, next_group(groups, number_label.x1)[0]),
        (day_label.x1, next_group(groups, day_label.x1)[0]),
        (month_label.x1, next_group(groups, month_label.x1)[0]),
    ]
    blanks = [every_blank[k] for k in fills]
    drawn = [new_ink(after, before, (left, top, right, bottom)) for left, right in blanks]
    # nothing drawn anywhere else on the line (not over "ngày", "tháng", "/QĐ-UBND",
    # nor in a blank the preset does not fill)
    everything = new_ink(after, before, (0, top, after.width / after.scale, bottom))
    assert everything[0] >= blanks[0][0] - 0.5 and everything[2] <= blanks[-1][1] + 0.5
    for (left, right), ink in zip(blanks, drawn, strict=True):
        assert left - 0.3 <= ink[0] and ink[2] <= right + 0.3, (document.stem, blanks, drawn)
    if 0 in fills:
        # the number reads "101/QĐ-UBND": against the slash, a space's width from "Số:"
        number = drawn[0]
        assert blanks[0][1] - number[2] <= 0.25 * size, (number, blanks[0])
    # day and month centred in their blanks
    for (left, right), ink in zip(blanks, drawn, strict=True):
        if (left, right) in every_blank[1:]:
            centre = (ink[0] + ink[2]) / 2
            assert abs(centre - (left + right) / 2) <= 0.08 * size, (ink, left, right)
    # the line's size and baseline: digits as tall as the printed "2026", on its baseline
    for ink in drawn:
        assert abs((ink[3] - ink[1]) - (year_bottom - year_top)) <= 0.06 * size + 0.5, (
            ink,
            year_top,
        )
        assert abs(ink[3] - year_bottom) <= 0.6, (ink, year_bottom)
    if 1 in fills:
        # the date line is set in italics: so is the date written into it
        fonts = subprocess.run(
            ["pdffonts", str(out)], capture_output=True, text=True, check=True
        ).stdout
        assert "LiberationSerif-Italic" in fonts, fonts


def test_font_size_of_the_line_is_kept_on_the_project_sample(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On the project's own sample (12 pt; poppler reads each line as one word)
    the digits are as tall as the line's own."""
    doc = SAMPLES / "decision.pdf"
    out = tmp_path / "dated.pdf"
    proc = sk(
        str(doc),
        *CLERK,
        "-o",
        str(out),
        "--preset",
        "nd30-date",
        program=wrapped(tmp_path, FIXED_CLOCK),
    )
    assert proc.returncode == 0, proc.stderr
    line = next(w for w in poppler_words(doc) if w.text.startswith("Số:"))
    before = render(doc, tmp_path / "b", dpi=DPI)
    after = render(out, tmp_path / "a", dpi=DPI)
    drawn = new_ink(after, before, (0, line.y0 - 2, 595, line.y1 + 2))
    # "2026" ends the line: the last 2.2 em of the line's ink
    year = ink_height(before, (line.x1 - 2.2 * 12, line.y0 - 2, line.x1 + 1, line.y1 + 2))
    assert abs((drawn[3] - drawn[1]) - (year[1] - year[0])) <= 0.6, (drawn, year)


# ------------------------------------------------------------------ the leader's image


def blue(pixel: tuple[int, int, int]) -> bool:
    r, _g, b = pixel
    return b > 120 and b - r > 60


@pytest.mark.parametrize("document", TEXT_DOCS, indirect=True)
def test_leader_image_fits_between_title_and_name(sk, document: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    facts = FACTS[document.stem]
    page = facts.pages
    out = tmp_path / "leader.pdf"
    proc = sk(
        str(document),
        *LEADER,
        "-o",
        str(out),
        "--preset",
        "nd30-person",
        "--image",
        str(SAMPLES / "signature.png"),
        "--anchor-text",
        facts.signer,
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    name = word(document, facts.signer.split()[-1], page)  # poppler: "Bình"
    name_line = [w for w in poppler_words(document, page) if abs(w.y0 - name.y0) < 2]
    name_left, name_right = min(w.x0 for w in name_line), max(w.x1 for w in name_line)
    # the title's last line ("PHÓ CHỦ TỊCH"): the lowest "TỊCH" above the name
    title_bottom = max(
        w.y1 for w in poppler_words(document, page) if w.text == "TỊCH" and w.y1 <= name.y0
    )
    image = ink_box(render(out, tmp_path / "p", page=page, dpi=DPI), blue)
    assert image is not None, "no signature image drawn"
    # below the title, above the name, centred on the name
    assert image[1] >= title_bottom - 0.5 and image[3] <= name.y0 + 0.5, (image, title_bottom, name)
    assert abs((image[0] + image[2]) / 2 - (name_left + name_right) / 2) <= 2 * MM, image
    # proportions kept: the PNG's strokes span 310 x ~80 px of its 360 x 140
    ink_w, ink_h = image[2] - image[0], image[3] - image[1]
    assert 2.8 <= ink_w / ink_h <= 4.6, (ink_w, ink_h)
    if facts.gap_mm < 20:
        # shrunk to the space there is, and the clerk is told when it is small
        assert "small" in proc.stderr or "nhỏ" in proc.stderr, proc.stderr


# ---------------------------------------------------- the whole workflow and the corners


@pytest.mark.parametrize("document", TEXT_DOCS, indirect=True)
def test_person_number_date_then_seal(sk, signkit, trust, document: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    facts = FACTS[document.stem]
    leader = tmp_path / "leader.pdf"
    proc = sk(
        str(document), *LEADER, "-o", str(leader), "--preset", "nd30-person",
        "--image", str(SAMPLES / "signature.png"), "--anchor-text", facts.signer,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    stamped = tmp_path / "stamped.pdf"
    proc = sk(
        str(leader), *CLERK, "-o", str(stamped), "--preset", "nd30-number-date",
        "--doc-number", "12/QĐ-UBND",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = sk(
        str(stamped), *CLERK, "--in-place", "--preset", "nd30-org",
        "--image", str(SAMPLES / "seal.png"), "--seal-mm", "36",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(stamped, signatures=4)
    verdict = signkit("verify", str(stamped), "--trust", str(trust), "--json", "--no-audit")
    assert verdict.returncode == 0, verdict.stderr
    signatures = json.loads(verdict.stdout)["documents"][0]["verdict"]["signatures"]
    assert [s["indication"] for s in signatures] == ["PASSED"] * 4
    # the seal's red ink overlaps the left part of the blue signature, on the same page
    raster = render(stamped, tmp_path / "s", page=facts.pages, dpi=DPI)
    sig = ink_box(render(leader, tmp_path / "l", page=facts.pages, dpi=DPI), blue)
    seal = ink_box(raster, lambda p: p[0] > 150 and p[1] < 100 and p[2] < 100)
    assert sig is not None and seal is not None
    assert seal[0] < sig[0] < seal[2] < sig[2], (seal, sig)
    assert abs((seal[2] - seal[0]) - 36 * MM) <= 2 * MM


CORNER_DOCS = ["rl-spaces-13", "fpdf-dots-13-tight", "lo-docx-dots-14-2p", "scan-colour"]


@pytest.mark.parametrize("document", CORNER_DOCS, indirect=True)
@pytest.mark.parametrize(
    "preset",
    [["nd30-attachment", "--doc-number", "12/QĐ-UBND"], ["nd30-copy", "--copy-form", "SAO Y"]],
)
def test_corner_presets_top_right_of_page_one(
    sk, document: Path, preset: list[str], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "corner.pdf"
    proc = sk(str(document), *CLERK, "-o", str(out), "--preset", *preset)
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    before = render(document, tmp_path / "b", dpi=72)
    after = render(out, tmp_path / "a", dpi=72)
    drawn = ink_box(after, dark, than=before)
    assert drawn is not None
    width = after.width / after.scale
    # top right, inside the page, clear of the national header's first line
    assert drawn[2] <= width - 5 * MM and drawn[0] >= width / 2, drawn
    assert drawn[1] >= 5 * MM and drawn[3] <= 35 * MM, drawn
    if document.stem == "scan-colour":
        # a colour 200 dpi scan meets Decree 30: no warning about it
        assert "dpi" not in proc.stderr and "colour" not in proc.stderr, proc.stderr


def test_scan_refuses_text_presets_with_a_reason(
    sk, office_pdfs: dict[str, Path], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    scan = office_pdfs["scan-colour"]
    out = tmp_path / "o.pdf"
    proc = sk(str(scan), *CLERK, "-o", str(out), "--preset", "nd30-number", "--doc-number", "1/QĐ")
    assert proc.returncode == 1, proc.stderr
    assert "no text" in proc.stderr and "scanned" in proc.stderr, proc.stderr
    assert not out.exists()
    proc = sk(
        str(scan), *LEADER, "-o", str(out), "--preset", "nd30-person",
        "--image", str(SAMPLES / "signature.png"), "--anchor-text", "Trần Thị Bình",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "no text" in proc.stderr and "--rect" in proc.stderr, proc.stderr
    assert not out.exists()


# ------------------------------------------------------------------ all or nothing, dry run


def number_only_decision(path: Path) -> Path:
    """A decision whose date line was left out: 'Số:' has its blank, 'ngày' has none."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    from support.fonts import LIBERATION

    if "LS-test" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("LS-test", LIBERATION))
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.setFont("LS-test", 13)
    c.drawString(30 * MM, 260 * MM, "Số:            /QĐ-UBND")
    c.drawString(30 * MM, 240 * MM, "QUYẾT ĐỊNH về việc phê duyệt kế hoạch")
    c.showPage()
    c.save()
    return path


def test_number_and_date_is_all_or_nothing(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Regression: a manifest run left half-stamped outputs (the number, no date)
    where the date could not be placed; now such a document gets neither."""
    good = [ND30 / "rl-spaces-13.pdf", ND30 / "fpdf-dots-13-tight.pdf"]
    bad = number_only_decision(tmp_path / "no-date.pdf")
    rows = ["input,output,preset,doc_number"]
    for k, source in enumerate([good[0], bad, good[1]]):
        rows.append(f"{source},{tmp_path / f'out{k}.pdf'},nd30-number-date,{k + 1}/QĐ-UBND")
    manifest = tmp_path / "batch.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    proc = sk("--manifest", str(manifest), *CLERK, "--json")
    assert proc.returncode == 1, proc.stderr
    assert "'ngày … tháng … năm' not found on page 1" in proc.stderr, proc.stderr
    assert not (tmp_path / "out1.pdf").exists()  # nothing half-done
    for k in (0, 2):
        assert_signed_ok(tmp_path / f"out{k}.pdf", signatures=2)
    documents = json.loads(proc.stdout)["documents"]
    failed = [d for d in documents if d["status"] == "failed"]
    assert [d["input"] for d in failed] == [str(bad)], documents


def test_a_rerun_completes_a_half_stamped_output(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An output left with the number only (by an earlier signkit) gets its date
    on the next run of nd30-number-date; the number is not stamped twice."""
    source = ND30 / "rl-dots-14.pdf"
    out = tmp_path / "out.pdf"
    half = sk(
        str(source), *CLERK, "-o", str(out), "--preset", "nd30-number", "--doc-number", "5/QĐ"
    )
    assert half.returncode == 0, half.stderr
    proc = sk(
        str(source), *CLERK, "-o", str(out), "--preset", "nd30-number-date",
        "--doc-number", "5/QĐ", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    statuses = [d["status"] for d in json.loads(proc.stdout)["documents"]]
    assert statuses == ["skipped", "signed"], statuses
    assert_signed_ok(out, signatures=2)


def test_dry_run_finds_the_anchor_text_and_checks_the_preset(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Regression: --dry-run planned a misspelt name; it now looks for it."""
    doc = ND30 / "fpdf-spaces-14-2p.pdf"
    person = ("--preset", "nd30-person", "--image", str(SAMPLES / "signature.png"))
    proc = sk(str(doc), *LEADER, "--output-dir", str(tmp_path), "--dry-run", *person,
              "--anchor-text", "Trần Thị Bìnhh")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "anchor text 'Trần Thị Bìnhh' not found on any page" in proc.stdout + proc.stderr, (
        proc.stderr
    )
    assert list(tmp_path.glob("*.pdf")) == []
    # case-insensitive matching is asked for, and then found
    upper = ("--anchor-text", "TRẦN THỊ BÌNH")
    proc = sk(str(doc), *LEADER, "--output-dir", str(tmp_path), "--dry-run", *person, *upper)
    assert proc.returncode == 1, proc.stderr
    proc = sk(str(doc), *LEADER, "--output-dir", str(tmp_path), "--dry-run", *person, *upper,
              "--anchor-ignore-case")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 planned" in proc.stdout + proc.stderr, proc.stderr
    # the clerk's stamps: a document without the date line is refused by the dry run
    bad = number_only_decision(tmp_path / "no-date.pdf")
    proc = sk(str(bad), *CLERK, "-o", str(tmp_path / "o.pdf"), "--dry-run",
              "--preset", "nd30-number-date", "--doc-number", "3/QĐ")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "'ngày … tháng … năm' not found" in proc.stdout + proc.stderr, proc.stderr
    # and in Vietnamese, without the jargon "chuỗi neo"
    proc = sk(str(doc), *LEADER, "--output-dir", str(tmp_path), "--dry-run", *person,
              "--anchor-text", "Trần Thị Bìnhh", env={"LANG": "vi_VN.UTF-8"})  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert (
        "dòng chữ dùng để định vị" in proc.stdout + proc.stderr
        and "chuỗi neo" not in proc.stdout + proc.stderr
    )


def test_anchor_ignore_case_places_the_signature(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o.pdf"
    proc = sk(
        str(ND30 / "rl-spaces-13.pdf"), *LEADER, "-o", str(out), "--preset", "nd30-person",
        "--image", str(SAMPLES / "signature.png"), "--anchor-text", "trần thị bình",
        "--anchor-ignore-case",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    name = word(ND30 / "rl-spaces-13.pdf", "Bình")
    image = ink_box(render(out, tmp_path / "p", dpi=DPI), blue)
    assert image is not None and image[3] <= name.y0 + 0.5
