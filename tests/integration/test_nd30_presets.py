"""Decree 30/2020 presets: the leader signs, then the clerk seals; attachments and copies."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from support.infra import FIXTURES
from support.pdfcheck import (
    assert_signed_ok,
    changed_pixels,
    ink_runs,
    new_words,
    pdfsig,
    poppler_word,
    render,
    validate,
)
from support.runner import wrapped

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
LEADER = ["--token-label", "signkit-test-b", "--key-label", "leader-vn"]
CLERK = ["--token-label", "signkit-test-b", "--key-label", "clerk-vn"]
MM = 72 / 25.4


@pytest.fixture
def sk(sk, trust: Path):  # type: ignore[no-untyped-def]
    """signkit sign pdf trusting the test root (the test-b token holds no chain)."""

    def run(*args: str, **kw):  # type: ignore[no-untyped-def]
        return sk(*args, "--trust", str(trust), **kw)

    return run


def widgets(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """Field name -> widget /Rect (x1, y1, x2, y2), from pyHanko's reader."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    out: dict[str, tuple[float, float, float, float]] = {}
    with path.open("rb") as fh:
        reader = PdfFileReader(fh, strict=False)
        for sig in reader.embedded_regular_signatures:
            field = sig.sig_field
            widget = field if "/Rect" in field else field["/Kids"][0].get_object()
            x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
            out[sig.field_name] = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return out


def assert_all_passed(signkit, path: Path, trust: Path, count: int) -> None:  # type: ignore[no-untyped-def]
    """`signkit verify`: every signature of ``path`` PASSED (no earlier one broken)."""
    proc = signkit("verify", str(path), "--trust", str(trust), "--json", "--no-audit")
    assert proc.returncode == 0, proc.stderr
    signatures = json.loads(proc.stdout)["documents"][0]["verdict"]["signatures"]
    assert [s["indication"] for s in signatures] == ["PASSED"] * count, signatures


def leader_signed(sk, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path / "leader.pdf"
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *LEADER,
        "-o",
        str(out),
        "--preset",
        "nd30-person",
        "--image",
        str(SAMPLES / "signature.png"),
        "--anchor-text",
        "Trần Thị Bình",
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_leader_then_clerk_seal_overlaps_a_third(sk, signkit, trust, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    leader = leader_signed(sk, tmp_path)
    assert_signed_ok(leader)
    assert b"/DocMDP" not in leader.read_bytes()  # the leader never certifies
    sealed = tmp_path / "sealed.pdf"
    proc = sk(
        str(leader),
        *CLERK,
        "-o",
        str(sealed),
        "--preset",
        "nd30-org",
        "--image",
        str(SAMPLES / "seal.png"),
        "--seal-mm",
        "36",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(sealed, signatures=2)
    # the leader's signature still validates after the seal
    statuses = validate(sealed)
    assert len(statuses) == 2 and all(s.intact and s.valid for s in statuses)
    assert_all_passed(signkit, sealed, trust, 2)
    boxes = widgets(sealed)
    person, seal = boxes["ND30-Person"], boxes["ND30-Org"]
    # the seal has its real size
    assert abs((seal[2] - seal[0]) - 36 * MM) <= 1 and abs((seal[3] - seal[1]) - 36 * MM) <= 1
    # it covers one third (± 5 %) of the signature image's width, on its left
    width = person[2] - person[0]
    overlap = min(seal[2], person[2]) - max(seal[0], person[0])
    assert abs(overlap / width - 1 / 3) <= 0.05, (overlap, width)
    assert seal[0] < person[0]
    # vertical centres within 2 mm
    assert abs((seal[1] + seal[3]) / 2 - (person[1] + person[3]) / 2) <= 2 * MM
    # the person's widget is the image: its proportions are the PNG's (360 x 140)
    assert abs(width / (person[3] - person[1]) - 360 / 140) < 0.05
    # red seal pixels are drawn where the widget says
    subprocess.run(["pdftoppm", "-r", "72", "-png", str(sealed), str(tmp_path / "p")], check=True)
    from PIL import Image

    page = Image.open(tmp_path / "p-1.png").convert("RGB")
    height = page.size[1]
    red = 0
    for x in range(int(seal[0]), int(seal[2])):
        for y in range(int(height - seal[3]), int(height - seal[1])):
            r, g, b = page.getpixel((x, y))  # type: ignore[misc]
            red += r > 150 and g < 100 and b < 100
    assert red > 100, red


def test_seal_refused_without_an_earlier_signature(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.pdf"
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *CLERK,
        "-o",
        str(out),
        "--preset",
        "nd30-org",
        "--image",
        str(SAMPLES / "seal.png"),
        "--seal-mm",
        "36",
    )
    assert proc.returncode == 1, proc.stderr
    assert "no earlier signature" in proc.stderr and "Art. 32.2" in proc.stderr
    assert not out.exists()


def test_seal_refused_when_the_leader_signature_was_broken(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    leader = leader_signed(sk, tmp_path)
    # someone adds an annotation after the leader signed (not allowed by Decree
    # 30's workflow: the document changed under the leader's signature)
    broken = tmp_path / "broken.pdf"
    with leader.open("rb") as fh:
        writer = IncrementalPdfFileWriter(fh)
        page_ref, _ = writer.find_page_for_modification(0)
        annot = generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Annot"),
                generic.NameObject("/Subtype"): generic.NameObject("/Text"),
                generic.NameObject("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (50, 50, 70, 70)]
                ),
                generic.NameObject("/Contents"): generic.TextStringObject("changed"),
            }
        )
        page = page_ref.get_object()
        annots = page.get("/Annots", generic.ArrayObject())
        annots.append(writer.add_object(annot))
        page[generic.NameObject("/Annots")] = annots
        writer.update_container(page)
        with broken.open("wb") as out:
            writer.write(out)
    out = tmp_path / "out.pdf"
    proc = sk(
        str(broken),
        *CLERK,
        "-o",
        str(out),
        "--preset",
        "nd30-org",
        "--image",
        str(SAMPLES / "seal.png"),
        "--seal-mm",
        "36",
    )
    assert proc.returncode == 1, proc.stderr
    assert "no longer validates" in proc.stderr
    assert not out.exists()


def test_seal_needs_its_diameter(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *CLERK,
        "-o",
        str(tmp_path / "o.pdf"),
        "--preset",
        "nd30-org",
        "--image",
        str(SAMPLES / "seal.png"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "needs --seal-mm" in proc.stderr


def test_leader_preset_refuses_to_certify(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *LEADER,
        "-o",
        str(tmp_path / "o.pdf"),
        "--preset",
        "nd30-person",
        "--image",
        str(SAMPLES / "signature.png"),
        "--anchor-text",
        "Trần Thị Bình",
        "--certify",
    )
    assert proc.returncode == 2, proc.stderr
    assert "does not allow --certify" in proc.stderr


DATE_LINE = "Số:      /QĐ-UBND                    Nam Định, ngày      tháng      năm 2026"
VN = timezone(timedelta(hours=7))


def date_line_blanks(tmp_path: Path) -> list[tuple[float, float]]:
    """The three printed blanks of the sample's number/date line (after "Số:",
    after "ngày", after "tháng"), from poppler's line box and the rendered ink."""
    line = poppler_word(SAMPLES / "decision.pdf", DATE_LINE)
    runs = ink_runs(render(SAMPLES / "decision.pdf", tmp_path / "blank"), line.y0, line.y1, gap=6)
    # "Số:" | "/QĐ-UBND" | "Nam Định, ngày" | "tháng" | "năm 2026"
    assert len(runs) == 5, runs
    return [(runs[0][1], runs[1][0]), (runs[2][1], runs[3][0]), (runs[3][1], runs[4][0])]


def dates_between(start: datetime, end: datetime) -> list[tuple[str, str]]:
    """(day, month) in Decree 30 form for each calendar day from ``start`` to ``end``."""
    out = []
    for moment in (start, end):
        d, m = moment.day, moment.month
        out.append((f"{d:02d}", f"{m:02d}" if m < 3 else str(m)))
    return out


def pdftotext(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_attachment_top_right_with_number_and_time(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "att.pdf"
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *CLERK,
        "-o",
        str(out),
        "--preset",
        "nd30-attachment",
        "--doc-number",
        "12/QĐ-UBND",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    # the suite's font root holds Liberation Serif only (tests/support/fonts.py)
    assert "Times New Roman not found; visible signatures use Liberation Serif" in proc.stderr
    text = pdftotext(out)
    assert "12/QĐ-UBND" in text
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+07:00", text), text
    box = widgets(out)["ND30-Attachment"]
    # top right of page 1 (A4 portrait: 595 x 842)
    assert box[2] > 595 - 20 * MM and box[3] > 842 - 20 * MM, box
    fonts = subprocess.run(
        ["pdffonts", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert any("LiberationSerif" in line and " yes " in line for line in fonts.splitlines())
    # the rendered page changes inside the box only
    for pdf, stem in ((SAMPLES / "attachment.pdf", "before"), (out, "after")):
        subprocess.run(
            ["pdftoppm", "-r", "72", "-gray", str(pdf), str(tmp_path / stem)], check=True
        )
    inside, outside = changed_pixels(tmp_path / "before-1.pgm", tmp_path / "after-1.pgm", box, 842)
    assert inside > 50 and outside == 0, (inside, outside)


def test_copy_preset_text_and_scan_warnings(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "copy.pdf"
    proc = sk(
        str(SAMPLES / "scan-gray.pdf"),
        *CLERK,
        "-o",
        str(out),
        "--preset",
        "nd30-copy",
        "--copy-form",
        "sao lục",
        "--copy-org",
        "Văn phòng UBND tỉnh",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    assert "not in colour" in proc.stderr and "100 dpi (under 200)" in proc.stderr
    text = pdftotext(out)
    assert "SAO LỤC" in text and "Văn phòng UBND tỉnh" in text


def test_copy_preset_rejects_an_unknown_form(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk(
        str(SAMPLES / "scan-gray.pdf"),
        *CLERK,
        "-o",
        str(tmp_path / "o.pdf"),
        "--preset",
        "nd30-copy",
        "--copy-form",
        "BẢN CHÍNH",
    )
    assert proc.returncode == 2, proc.stderr
    assert "SAO Y, SAO LỤC, TRÍCH SAO" in proc.stderr


def test_manifest_mixes_presets_and_numbers(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    manifest = tmp_path / "batch.csv"
    rows = ["input,output,preset,doc_number,copy_form"]
    for i in range(3):
        source = tmp_path / f"in{i}.pdf"
        source.write_bytes((SAMPLES / "attachment.pdf").read_bytes())
        rows.append(f"{source},{tmp_path / f'a{i}.pdf'},nd30-attachment,{i + 1}/QĐ-UBND,")
    rows.append(f"{SAMPLES / 'scan-gray.pdf'},{tmp_path / 'c.pdf'},nd30-copy,,SAO Y")
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    proc = sk("--manifest", str(manifest), *CLERK)
    assert proc.returncode == 0, proc.stderr
    for i in range(3):
        assert f"{i + 1}/QĐ-UBND" in pdftotext(tmp_path / f"a{i}.pdf")
    assert "SAO Y" in pdftotext(tmp_path / "c.pdf")


def test_resume_is_per_field(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second signature by the same certificate in another field is not 'done'."""
    work = tmp_path / "doc.pdf"
    work.write_bytes((SAMPLES / "attachment.pdf").read_bytes())
    attachment = ("--in-place", "--preset", "nd30-attachment", "--doc-number", "1/QĐ", "--json")
    first = sk(str(work), *CLERK, *attachment)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["totals"]["signed"] == 1
    signed_once = work.read_bytes()
    again = sk(str(work), *CLERK, *attachment)
    assert again.returncode == 0, again.stderr
    (doc,) = json.loads(again.stdout)["documents"]
    assert doc["status"] == "skipped" and doc["reason"] == "already signed by this signer", doc
    assert work.read_bytes() == signed_once  # nothing was added
    assert pdfsig(work).count("Signature is Valid") == 1
    copy = sk(str(work), *CLERK, "--in-place", "--preset", "nd30-copy", "--copy-form", "SAO Y")
    assert copy.returncode == 0, copy.stderr
    assert set(widgets(work)) == {"ND30-Attachment", "ND30-Copy"}
    assert pdfsig(work).count("Signature is Valid") == 2


def test_manifest_listing_an_input_twice_is_refused(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Regression: the second row found the input locked by its own run and was
    reported as skipped ('locked by another signkit run') with exit code 0."""
    manifest = tmp_path / "batch.csv"
    source = SAMPLES / "attachment.pdf"
    manifest.write_text(
        f"input,output\n{source},{tmp_path / 'a.pdf'}\n{source},{tmp_path / 'b.pdf'}\n",
        encoding="utf-8",
    )
    proc = sk("--manifest", str(manifest), *CLERK)
    assert proc.returncode == 2, proc.stderr
    assert "listed twice in the batch" in proc.stderr
    assert not (tmp_path / "a.pdf").exists() and not (tmp_path / "b.pdf").exists()


def test_number_and_date_then_seal_all_signatures_stay_valid(
    sk, signkit, trust, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    leader = leader_signed(sk, tmp_path)
    assert_all_passed(signkit, leader, trust, 1)
    stamped = tmp_path / "stamped.pdf"
    signed_from = datetime.now(VN)
    proc = sk(
        str(leader),
        *CLERK,
        "-o",
        str(stamped),
        "--preset",
        "nd30-number-date",
        "--doc-number",
        "12/QĐ-UBND",
    )
    signed_until = datetime.now(VN)
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(stamped, signatures=3)
    assert_all_passed(signkit, stamped, trust, 3)
    # the seal comes last, over the leader's image, not over the clerk's text stamps
    proc = sk(
        str(stamped),
        *CLERK,
        "--in-place",
        "--preset",
        "nd30-org",
        "--image",
        str(SAMPLES / "seal.png"),
        "--seal-mm",
        "36",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(stamped, signatures=4)
    assert_all_passed(signkit, stamped, trust, 4)
    boxes = widgets(stamped)
    assert set(boxes) == {"ND30-Person", "ND30-Number", "ND30-Date", "ND30-Org"}

    # the stamped text sits in the printed blanks: "Số: 12 /QĐ-UBND", "ngày DD tháng M",
    # the blanks as poppler and the rendered page show them (not as signkit finds them)
    blanks = date_line_blanks(tmp_path)
    line = poppler_word(SAMPLES / "decision.pdf", DATE_LINE)
    drawn = ink_runs(
        render(stamped, tmp_path / "stamped"),
        line.y0,
        line.y1,
        gap=6,
        than=render(SAMPLES / "decision.pdf", tmp_path / "original"),
    )
    assert len(drawn) == 3, drawn  # the number, the day, the month: nothing else
    for (left, right), (blank_left, blank_right) in zip(drawn, blanks, strict=True):
        assert blank_left - 0.5 <= left and right <= blank_right + 0.5, (drawn, blanks)
    # the text a reader's tool extracts: "12" and today's date in Decree 30 form
    words = sorted(new_words(SAMPLES / "decision.pdf", stamped), key=lambda w: w.x0)
    texts = [w.text for w in words]
    assert any(texts == ["12", d, m] for d, m in dates_between(signed_from, signed_until)), texts
    for w, blank in zip(words, blanks, strict=True):
        assert blank[0] - 1 <= w.x0 and w.x1 <= blank[1] + 1, (w, blank)
        assert line.y0 - 2 <= w.y0 and w.y1 <= line.y1 + 2, (w, line)
    # the widgets are where the text is (display y from the top: page height - pdf y)
    number_box = boxes["ND30-Number"]
    assert number_box[0] <= words[0].x0 and words[0].x1 <= number_box[2]
    assert 842 - number_box[3] <= line.y0 + 1 and 842 - number_box[1] >= line.y1 - 1

    # a re-run finds both text signatures done (per field) and signs nothing
    again = sk(
        str(stamped),
        *CLERK,
        "--in-place",
        "--preset",
        "nd30-number-date",
        "--doc-number",
        "12/QĐ-UBND",
        "--json",
    )
    assert again.returncode == 0, again.stderr
    statuses = [d["status"] for d in json.loads(again.stdout)["documents"]]
    assert statuses == ["skipped", "skipped"], statuses


FIXED_CLOCK = """
from datetime import datetime

import signkit.formats.pdf.prepare as prepare


class Clock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.fromisoformat("{moment}").astimezone(tz)


prepare.datetime = Clock
"""


@pytest.mark.parametrize(
    ("moment", "day", "month"),
    [
        ("2026-02-05T09:41:07+07:00", "05", "02"),  # day under 10, month 1-2: zeros
        ("2026-03-09T08:00:00+07:00", "09", "3"),  # no zero for months from March
        ("2026-11-23T16:30:00+07:00", "23", "11"),
        ("2026-01-31T23:30:00+00:00", "01", "02"),  # the date in Vietnam, not UTC
    ],
)
def test_the_date_reads_back_in_decree_30_form(  # type: ignore[no-untyped-def]
    sk, tmp_path: Path, moment: str, day: str, month: str
) -> None:
    """The signing clock is set (in a wrapper around the real command) so that
    the leading-zero rules are exercised whatever today is; pdftotext reads the
    stamped date back and the rendered page shows it in the blanks."""
    out = tmp_path / "dated.pdf"
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *CLERK,
        "-o",
        str(out),
        "--preset",
        "nd30-date",
        program=wrapped(tmp_path, FIXED_CLOCK.format(moment=moment)),
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    words = sorted(new_words(SAMPLES / "decision.pdf", out), key=lambda w: w.x0)
    assert [w.text for w in words] == [day, month], words
    _number, day_blank, month_blank = date_line_blanks(tmp_path)
    for word, (left, right) in zip(words, (day_blank, month_blank), strict=True):
        assert left - 1 <= word.x0 and word.x1 <= right + 1, (word, left, right)


def test_number_refused_when_the_blank_is_missing(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *CLERK,
        "-o",
        str(tmp_path / "o.pdf"),
        "--preset",
        "nd30-number",
        "--doc-number",
        "3/QĐ-UBND",
    )
    assert proc.returncode == 1, proc.stderr
    assert "'Số:' not found on page 1" in proc.stderr
    assert not (tmp_path / "o.pdf").exists()
