"""The difference analysis after a signature (verify/pdf_changes.py), on hand-made
revisions: no token, no network. What a reader renders is compared by value;
identical rewrites are not changes; a change behind an unchanged reference is.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signkit.verify.pdf_changes import ANNOT, FORM, LTA, NONE, OTHER, review_changes
from support.infra import FIXTURES

sys.path.insert(0, str(FIXTURES))
from make_hostile_pdfs import (
    _append,
    _pdf,
    _stream,
    append_with_xref_stream,
    object_stream,
    overlay_document,
    packed_document,
    packed_objects,
)


def _review(data: bytes, *, revision: int = 0, docmdp: int | None = None, locked: Any = None):  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    return review_changes(reader, revision, docmdp=docmdp, locked=locked)


PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents [4 0 R 5 0 R 8 0 R]"
    b" /Resources << /Font << /F1 6 0 R >> /XObject << /Fm0 7 0 R >> >> %s>>"
)


def test_nothing_after_the_revision_is_no_change() -> None:
    report = _review(overlay_document())
    assert (report.level, report.changes, report.forbidden) == (NONE, (), None)


def test_identical_rewrites_and_orphans_are_not_changes() -> None:
    """Writers re-serialise objects they did not change, and leave objects nothing
    refers to: neither changes what is shown."""
    data = _append(overlay_document(), {3: PAGE % b"", 6: b"<< /Type /Font /Subtype /Type1 "
                                                          b"/BaseFont /Helvetica >>",
                                        40: _stream(b"orphan")})  # fmt: skip
    assert _review(data).level == NONE


def test_a_change_behind_an_unchanged_reference_is_found() -> None:
    """Regression (found while writing the analysis): the page object is not
    rewritten, but a stream it draws is; comparing references alone misses it."""
    data = _append(overlay_document(), {4: _stream(b"BT /F1 18 Tf 72 700 Td (Khac) Tj ET")})
    report = _review(data)
    assert report.level == OTHER and report.forbidden == "page 1 changed (content)"


def _three_pages() -> bytes:
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R >>"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 3 >>",
            font,
            *(page % n for n in (7, 8, 9)),
            *(_stream(b"BT /F1 18 Tf 72 700 Td (Trang %d) Tj ET" % n) for n in (1, 2, 3)),
        ]
    )


def test_a_page_count_lowered_hides_pages_and_is_forbidden() -> None:
    """Regression: /Count 2 over three /Kids made poppler and pdfium show two
    pages, and the review (which walks /Kids) found no change."""
    signed = _three_pages()
    hidden = _append(signed, {2: b"<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 2 >>"})
    assert _review(hidden).forbidden == "the page tree changed (/Count)"
    again = _append(signed, {2: b"<< /Type /Pages /Kids [4 0 R 5 0 R 6 0 R] /Count 3 >>"})
    assert _review(again).level == NONE
    # The same pages under a new inner node: a tree readers walk otherwise.
    regrouped = _append(
        signed,
        {
            2: b"<< /Type /Pages /Kids [4 0 R 20 0 R] /Count 3 >>",
            20: b"<< /Type /Pages /Parent 2 0 R /Kids [5 0 R 6 0 R] /Count 2 >>",
        },
    )
    assert _review(regrouped).forbidden == "the page tree changed"


def test_annotations_reordered_are_an_annotation_change() -> None:
    """Regression: swapping two annotations in /Annots (which decides which one is
    drawn on top) was no change."""
    note = b"<< /Type /Annot /Subtype /Square /Rect [0 0 %d %d] /C [1 0 0] >>"
    signed = _append(
        overlay_document(),
        {3: PAGE % b"/Annots [20 0 R 21 0 R] ", 20: note % (100, 100), 21: note % (50, 50)},
    )
    report = _review(_append(signed, {3: PAGE % b"/Annots [21 0 R 20 0 R] "}), revision=1)
    assert (report.level, report.changes) == (ANNOT, ("annotations reordered on page 1",))
    assert (
        _review(_append(signed, {3: PAGE % b"/Annots [20 0 R 21 0 R] "}), revision=1).level == NONE
    )


def test_an_object_stream_of_the_signed_revision_rewritten_is_forbidden() -> None:
    """Regression: an update that rewrote only the object stream packing the page
    (now drawing the stream the signed page did not) passed as no change.
    pyHanko reads a packed object through the stream's current version in
    every revision, so the signed page and the page now looked the same."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    signed = packed_document()
    data = append_with_xref_stream(signed, {7: object_stream(packed_objects(5))})
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    as_signed = reader.get_historical_resolver(0).root["/Pages"]["/Kids"][0]
    now = reader.root["/Pages"]["/Kids"][0]
    assert as_signed.raw_get("/Contents").idnum == now.raw_get("/Contents").idnum == 5
    assert (
        PdfFileReader(io.BytesIO(signed)).root["/Pages"]["/Kids"][0].raw_get("/Contents").idnum == 4
    )
    report = _review(data)
    assert (report.level, report.forbidden) == (
        OTHER,
        "object stream 7 of the signed revision changed",
    )


def test_an_object_stream_written_again_as_it_was_is_no_change() -> None:
    report = _review(
        append_with_xref_stream(packed_document(), {7: object_stream(packed_objects(4))})
    )
    assert (report.level, report.forbidden) == (NONE, None)


def test_objects_moved_out_of_an_object_stream_are_compared_by_value() -> None:
    """A writer may write packed objects again on their own: the stream stays as
    signed, and the page is compared as any rewritten page is."""
    same = packed_objects(4)
    moved = append_with_xref_stream(packed_document(), {3: same[3], 6: same[6]})
    assert _review(moved).level == NONE
    changed = append_with_xref_stream(packed_document(), {3: packed_objects(5)[3]})
    assert _review(changed).forbidden == "page 1 changed (content)"


def test_an_annotation_added_is_permitted_and_listed_unless_docmdp_forbids() -> None:
    annot = b"<< /Type /Annot /Subtype /Text /Rect [0 0 10 10] /Contents (Da xem) >>"
    data = _append(overlay_document(), {3: PAGE % b"/Annots [20 0 R] ", 20: annot})
    report = _review(data)
    assert report.level == ANNOT and report.forbidden is None
    assert report.changes == ("annotation added on page 1 (/Text)",)
    assert report.notable == report.changes
    for level in (1, 2):
        forbidden = _review(data, docmdp=level).forbidden
        assert forbidden is not None and f"DocMDP level {level}" in forbidden
    assert _review(data, docmdp=3).forbidden is None


def test_validation_data_is_routine() -> None:
    dss = b"<< /Type /DSS /Certs [] >>"
    catalog = b"<< /Type /Catalog /Pages 2 0 R /DSS 20 0 R >>"
    report = _review(_append(overlay_document(), {1: catalog, 20: dss}), docmdp=1)
    assert report.level == LTA and report.forbidden is None
    assert report.changes == ("validation data (DSS) added or updated",)
    assert report.notable == ()


@pytest.mark.parametrize(
    ("objects", "reason"),
    [
        ({3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 800] /Contents [4 0 R 5 0 R 8 0 R]"
             b" /Resources << /Font << /F1 6 0 R >> /XObject << /Fm0 7 0 R >> >> >>"},
         "page 1 changed (/MediaBox)"),
        ({2: b"<< /Type /Pages /Kids [3 0 R 12 0 R] /Count 2 >>"},
         "pages were added or removed (1 signed, 2 now)"),
        ({1: b"<< /Type /Catalog /Pages 2 0 R /OpenAction 30 0 R >>",
          30: b"<< /S /JavaScript /JS (app.alert(1)) >>"},
         "the document catalog's /OpenAction entry changed"),
        ({2: b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>"}, "the page tree is cyclic"),
        # Regression: a /Count changed was no change, yet readers show that many pages.
        ({2: b"<< /Type /Pages /Kids [3 0 R] /Count 2 >>"}, "the page tree changed (/Count)"),
        # Regression: a catalog without /Pages raised KeyError ("cannot be checked").
        ({1: b"<< /Type /Catalog >>"}, "the page tree cannot be read"),
    ],
)  # fmt: skip
def test_forbidden_changes(objects: dict[int, bytes], reason: str) -> None:
    report = _review(_append(overlay_document(), objects))
    assert (report.level, report.forbidden) == (OTHER, reason)


def _form(value: bytes | None, *, appearance: int = 21) -> bytes:
    v = b"/V (%s) " % value if value is not None else b""
    return (
        b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (SoHoSo) /Rect [300 100 500 120]"
        b" /P 3 0 R /AP << /N %d 0 R >> %s>>" % (appearance, v)
    )


def _with_form() -> bytes:
    catalog = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [20 0 R] >> >>"
    return _append(
        overlay_document(),
        {1: catalog, 3: PAGE % b"/Annots [20 0 R] ", 20: _form(None), 21: _stream(b"")},
    )


def test_a_widget_named_with_another_generation_is_removed_from_its_page() -> None:
    """Regression: /Annots [20 7 R] where the widget is 20 0 R names nothing (null,
    for pyHanko and readers alike), so the field's widget is no longer drawn;
    compared by object number alone, the page still listed it."""
    signed = _with_form()
    data = _append(signed, {3: PAGE % b"/Annots [20 7 R] "})
    report = _review(data, revision=1)
    assert (report.level, report.forbidden) == (
        OTHER,
        "a form field's widget was removed from page 1",
    )


def test_a_field_filled_in_is_form_filling_unless_locked() -> None:
    signed = _with_form()
    filled = _append(signed, {20: _form(b"12", appearance=22), 22: _stream(b"BT (12) Tj ET")})
    report = _review(filled, revision=1)
    assert report.level == FORM and report.changes == ("form field 'SoHoSo' filled in",)
    assert _review(filled, revision=1, docmdp=2).forbidden is None
    locked = _review(filled, revision=1, locked=lambda name: name == "SoHoSo").forbidden
    assert locked is not None and "FieldMDP" in locked


def test_an_appearance_changed_without_its_value_is_forbidden() -> None:
    """A field's look is tied to its value: a new appearance for an unchanged value
    is how a shadow attack shows other content."""
    signed = _with_form()
    sneaky = _append(signed, {21: _stream(b"BT (1.000.000) Tj ET")})
    report = _review(sneaky, revision=1)
    assert report.level == OTHER and report.forbidden == "form field 'SoHoSo' changed (/AP)"


@settings(max_examples=60, deadline=None)
@given(content=st.binary(min_size=1, max_size=40))
def test_any_other_content_on_the_page_is_forbidden(content: bytes) -> None:
    original = b"BT /F1 18 Tf 72 700 Td (So tien: 1.000.000.000 VND) Tj ET"
    data = _append(overlay_document(), {4: _stream(content)})
    report = _review(data)
    if content == original:
        assert report.level == NONE
    else:
        assert report.forbidden == "page 1 changed (content)"
