"""Thumbnails of a signed PDF's pages for people's reports: each page that
carries a signature field, rendered small, with every signature field
outlined and numbered as the report's text numbers the signatures.

Runs in the verification worker (within the document's memory and time
budget): rendering is work on an untrusted file like any other.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WIDTH = 360
"""Thumbnail width in pixels."""
_COLOUR = (200, 30, 45)


@dataclass(frozen=True)
class PageThumbnail:
    """One rendered page and the signature fields drawn on it."""

    page: int
    """Page number (1-based)."""
    png: bytes
    """The rendered page with its fields outlined (PNG)."""
    fields: list[tuple[int, str]] = field(default_factory=list)
    """(signature number, field name) of the fields on this page."""
    invisible: list[tuple[int, str]] = field(default_factory=list)
    """Signatures on this page whose field has no area (invisible signatures)."""


def _fields(
    path: Path, names: list[str | None], password: str | None
) -> tuple[list[tuple[int, str, int, tuple[float, float, float, float]]], str | None]:
    """(signature number, field name, page index, rect) of every signature
    field that has a verdict, numbered as the verdicts are (``names``: the
    verdicts' field names in order); and the password that opened the
    document (None: none, or the empty one)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from signkit.formats.pdf.encryption import unlock_to_read

    opened_with = None
    with path.open("rb") as fh:
        reader = PdfFileReader(fh, strict=False)
        if reader.encrypted:
            opened_with = unlock_to_read(reader, str(path), password)
        pages = {}
        for index in range(int(reader.root["/Pages"]["/Count"])):
            ref = reader.find_page_for_modification(index)[0]
            pages[(ref.idnum, ref.generation)] = index
        out = []
        for sig in reader.embedded_signatures:
            if str(sig.field_name) not in names:
                continue
            number = names.index(str(sig.field_name)) + 1
            widget = sig.sig_field
            rect = widget["/Rect"] if "/Rect" in widget else None
            page_ref = widget.get_value_as_reference("/P") if "/P" in widget else None
            if "/Kids" in widget:
                kid = widget["/Kids"][0]
                rect = kid["/Rect"] if "/Rect" in kid else None
                page_ref = kid.get_value_as_reference("/P") if "/P" in kid else None
            index = pages.get((page_ref.idnum, page_ref.generation), 0) if page_ref else 0
            x0, y0, x1, y1 = (float(v) for v in rect) if rect is not None else (0.0,) * 4
            out.append((number, str(sig.field_name), index, (x0, y0, x1, y1)))
        return out, opened_with


def render(path: Path, names: list[str | None], password: str | None = None) -> list[PageThumbnail]:
    """Thumbnails of the pages that carry signature fields (page 1 when every
    signature is invisible and has no page); ``names``: the verdicts' field
    names, in the order the report numbers them; ``password`` opens the PDFs
    that need one."""
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    signatures, opened_with = _fields(path, names, password)
    if not signatures:
        return []
    by_page: dict[int, list[tuple[int, str, tuple[float, float, float, float]]]] = {}
    for number, name, index, box in signatures:
        by_page.setdefault(index, []).append((number, name, box))
    pdf = pdfium.PdfDocument(str(path), password=opened_with)
    pdf.init_forms()  # signature appearances are widgets: drawn with the page
    try:
        out = []
        for index in sorted(by_page):
            if index >= len(pdf):
                continue
            page = pdf[index]
            width, _height = page.get_size()
            scale = WIDTH / width
            image = page.render(scale=scale, rotation=0).to_pil().convert("RGB")
            draw = ImageDraw.Draw(image)
            visible, invisible = [], []
            crop = page.get_cropbox()
            for number, name, (x0, y0, x1, y1) in by_page[index]:
                if abs(x1 - x0) < 1 or abs(y1 - y0) < 1:
                    invisible.append((number, name))
                    continue
                left = (min(x0, x1) - crop[0]) * scale
                right = (max(x0, x1) - crop[0]) * scale
                top = (crop[3] - max(y0, y1)) * scale
                bottom = (crop[3] - min(y0, y1)) * scale
                draw.rectangle((left, top, right, bottom), outline=_COLOUR, width=2)
                _badge(draw, left, top, str(number))
                visible.append((number, name))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", optimize=True)
            out.append(PageThumbnail(index + 1, buffer.getvalue(), visible, invisible))
        return out
    finally:
        pdf.close()


def _badge(draw: Any, x: float, y: float, text: str) -> None:
    """The signature's number in a filled box at the field's top-left corner."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=14)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 8, bottom - top + 6
    x0, y0 = max(0.0, x - 1), max(0.0, y - h)
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill=_COLOUR)
    draw.text((x0 + 4 - left, y0 + 3 - top), text, fill=(255, 255, 255), font=font)
