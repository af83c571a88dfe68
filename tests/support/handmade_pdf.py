"""Small PDFs written by hand, object by object, to damage one thing at a time
(a real producer's file cannot be made to carry a /Rotate of 45 or a /Parent
that loops without rewriting it this way)."""

from __future__ import annotations

import zlib

CONTENT = b"BT /F1 12 Tf 72 720 Td (Quyet dinh so 12/QD-UBND) Tj ET"


def page_objects(
    *,
    page: bytes = b"",
    pages: bytes = b"",
    catalog: bytes = b"",
    mediabox: bytes | None = b"[0 0 595 842]",
) -> dict[int, bytes]:
    """A one-page document's objects, with extra entries for the page, the page
    tree node and the catalog (``mediabox`` None: the page has none)."""
    box = b" /MediaBox " + mediabox if mediabox is not None else b""
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R" + catalog + b" >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1" + pages + b" >>",
        3: b"<< /Type /Page /Parent 2 0 R" + box + b" /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >>" + page + b" >>",
        4: b"<< /Length %d >>\nstream\n" % len(CONTENT) + CONTENT + b"\nendstream",
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }


def build(
    objects: dict[int, bytes],
    *,
    trailer: bytes = b"/Root 1 0 R",
    header: bytes = b"%PDF-1.7",
    eol: bytes = b"\n",
    end: bytes = b"\n",
    gens: dict[int, int] | None = None,
    size: bytes | None = None,
    startxref: bytes | None = None,
) -> bytes:
    """A one-revision PDF with a cross-reference table: the objects, then the
    trailer's other entries after /Size (``size`` and the ``startxref``
    offset as given, else the right ones)."""
    gens = gens or {}
    out = bytearray(header + eol + b"%\xe2\xe3\xcf\xd3" + eol)
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d %d obj" % (num, gens.get(num, 0)) + eol + objects[num] + eol + b"endobj" + eol
    count = max(objects) + 1
    at = len(out)
    out += b"xref" + eol + b"0 %d" % count + eol + b"0000000000 65535 f\r\n"
    for num in range(1, count):
        if num in offsets:
            out += b"%010d %05d n\r\n" % (offsets[num], gens.get(num, 0))
        else:
            out += b"0000000000 00001 f\r\n"
    out += b"trailer" + eol + b"<< /Size " + (size or b"%d" % count) + b" " + trailer + b" >>" + eol
    out += b"startxref" + eol + (startxref or b"%d" % at) + eol + b"%%EOF" + end
    return bytes(out)


def with_damaged_xref_stream(objects: dict[int, bytes]) -> bytes:
    """The objects indexed by a cross-reference stream whose Flate data does not
    inflate (its check sum is wrong)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    rows = bytearray(b"\x00\x00\x00\x00\x00\xff")  # object 0: free
    for num in sorted(objects):
        rows += b"\x01" + len(out).to_bytes(4, "big") + b"\x00"
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref_num = max(objects) + 1
    rows += b"\x01" + len(out).to_bytes(4, "big") + b"\x00"
    data = bytearray(zlib.compress(bytes(rows)))
    data[-1] ^= 0xFF  # the Adler-32 check sum no longer matches
    xref = len(out)
    out += (
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 1] /Root 1 0 R /Filter /FlateDecode"
        b" /Length %d >>\nstream\n"
        % (xref_num, xref_num + 1, len(data))
        + bytes(data)
        + b"\nendstream\nendobj\n"
    )
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)
