"""The people's verification report as PDF/A-2b: reportlab lays it out with
an embedded TrueType subset (Vietnamese diacritics everywhere), the
catalogue carries the XMP identification and an sRGB output intent, and
every piece of text is real text (pdftotext reads it; `sign pdf` signs it).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from signkit.verify.report import DocumentView, _font_files, _write, label

_FONT, _BOLD = "SkSans", "SkSans-Bold"


def _register_fonts() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if _FONT in pdfmetrics.getRegisteredFontNames():
        return
    regular, bold = _font_files()
    pdfmetrics.registerFont(TTFont(_FONT, regular))
    pdfmetrics.registerFont(TTFont(_BOLD, bold))
    pdfmetrics.registerFontFamily(_FONT, normal=_FONT, bold=_BOLD)


def write_pdf(views: list[DocumentView], path: Path, *, lang: str, zone: str, line: str) -> None:
    """One page (or more when a document has many signatures) per document."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, SimpleDocTemplate

    _register_fonts()
    buffer = io.BytesIO()
    title = label("title", lang)
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=16 * mm,
        rightMargin=16 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=title,
        author="signkit",
        subject=line,
        creator="signkit",
        producer="signkit",
        lang=lang,
        # Every font embedded (PDF/A): not even reportlab's default Helvetica.
        initialFontName=_FONT,
    )
    styles = _styles()
    story: list[Any] = []
    for n, view in enumerate(views):
        if n:
            story.append(PageBreak())
        story += _document(view, styles, lang, title, line, zone)
    doc.build(story, onFirstPage=_pdfa, onLaterPages=_no_op)
    _write(path, buffer.getvalue())


def _no_op(canvas: Any, doc: Any) -> None:
    return None


def _styles() -> dict[str, Any]:
    from reportlab.lib.styles import ParagraphStyle

    base = ParagraphStyle("body", fontName=_FONT, fontSize=9.5, leading=12.5)
    return {
        "body": base,
        "h1": ParagraphStyle("h1", parent=base, fontName=_BOLD, fontSize=15, leading=19),
        "h2": ParagraphStyle("h2", parent=base, fontName=_BOLD, fontSize=12, leading=16),
        "h3": ParagraphStyle("h3", parent=base, fontName=_BOLD, fontSize=10.5, leading=14),
        "key": ParagraphStyle("key", parent=base, textColor="#57606a"),
        "note": ParagraphStyle("note", parent=base, fontSize=8.5, textColor="#57606a"),
        "badge": ParagraphStyle(
            "badge", parent=base, fontName=_BOLD, fontSize=11, textColor="#ffffff"
        ),
    }


def _table(rows: list[list[Any]], *commands: tuple[Any, ...], **kwargs: Any) -> Any:
    """A table whose cells use the embedded font (reportlab's default is an
    unembedded Helvetica, which PDF/A forbids even when nothing is written in it)."""
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, **kwargs)
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), _FONT), *commands]))
    return table


def _p(text: str, style: Any) -> Any:
    from reportlab.platypus import Paragraph

    return Paragraph(escape(text), style)


def _badge(text: str, colour: str, styles: dict[str, Any]) -> Any:
    from reportlab.lib import colors
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return _table(
        [[_p(text, styles["badge"])]],
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(colour)),
        ("LEFTPADDING", (0, 0), (-1, -1), 8),
        ("RIGHTPADDING", (0, 0), (-1, -1), 8),
        colWidths=[stringWidth(text, _BOLD, 11) + 18],
        hAlign="LEFT",
    )


def _rows(rows: list[tuple[str, str]], styles: dict[str, Any]) -> Any:
    from reportlab.lib.units import mm

    return _table(
        [[_p(k, styles["key"]), _p(v, styles["body"])] for k, v in rows],
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 1),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1),
        colWidths=[46 * mm, 130 * mm],
        hAlign="LEFT",
    )


def _document(
    view: DocumentView, styles: dict[str, Any], lang: str, title: str, line: str, zone: str
) -> list[Any]:
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Spacer

    story: list[Any] = [
        _p(title, styles["h1"]),
        _p(f"{line} · {label('zone', lang)} {zone}", styles["note"]),
        Spacer(1, 3 * mm),
        _p(Path(view.input).name, styles["h2"]),
        _badge(view.verdict, view.colour, styles),
        Spacer(1, 1.5 * mm),
        _p(view.sentence, styles["body"]),
        Spacer(1, 1.5 * mm),
        _rows(view.rows, styles),
    ]
    if not view.signatures and view.judged:
        story.append(_p(label("none_found", lang), styles["body"]))
    for sig in view.signatures:
        story += [
            Spacer(1, 3 * mm),
            _table(
                [[_p(sig.title, styles["h3"]), _badge(sig.verdict, sig.colour, styles)]],
                hAlign="LEFT",
            ),
            _rows(sig.rows, styles),
        ]
        if sig.warnings:
            story.append(
                _p(f"{label('warnings', lang)}: " + " · ".join(sig.warnings), styles["note"])
            )
    if view.pages:
        story += [Spacer(1, 3 * mm), _p(label("pages", lang), styles["h3"])]
        cells = []
        for page in view.pages:
            from PIL import Image as PilImage

            with PilImage.open(io.BytesIO(page.png)) as img:
                width, height = img.size
            shown = 60 * mm
            caption = f"{label('page', lang)} {page.page}"
            if page.invisible:
                caption += " · " + ", ".join(
                    f"{n}: {label('invisible', lang)}" for n, _ in page.invisible
                )
            cells.append(
                [
                    Image(io.BytesIO(page.png), width=shown, height=shown * height / width),
                    _p(caption, styles["note"]),
                ]
            )
        for start in range(0, len(cells), 3):
            row = [_table([[c[0]], [c[1]]]) for c in cells[start : start + 3]]
            story.append(_table([row], hAlign="LEFT"))
    return story


# ---------------------------------------------------------------- PDF/A-2b


def _pdfa(canvas: Any, doc: Any) -> None:
    """Identify the file as PDF/A-2b: XMP metadata matching the document
    information, and an sRGB output intent (set once, on the first page)."""
    from reportlab.pdfbase import pdfdoc

    document = canvas._doc
    catalog = document.Catalog
    info = document.info
    stamp = document._timeStamp
    year, month, day, hour, minute, second = stamp.YMDhms[:6]
    offset = f"{stamp.dhh:+03d}:{stamp.dmm:02d}"
    when = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{offset}"
    xmp = _XMP.format(
        title=escape(info.title),
        author=escape(info.author),
        subject=escape(info.subject),
        producer=escape(info.producer),
        creator=escape(info.creator),
        keywords=escape(info.keywords),
        when=when,
    ).encode("utf-8")
    metadata = pdfdoc.PDFStream(
        pdfdoc.PDFDictionary(
            {"Type": pdfdoc.PDFName("Metadata"), "Subtype": pdfdoc.PDFName("XML")}
        ),
        xmp,
        filters=[],
    )
    intent = pdfdoc.PDFDictionary(
        {
            "Type": pdfdoc.PDFName("OutputIntent"),
            "S": pdfdoc.PDFName("GTS_PDFA1"),
            "OutputConditionIdentifier": pdfdoc.PDFString("sRGB IEC61966-2.1"),
            "Info": pdfdoc.PDFString("sRGB IEC61966-2.1"),
            "DestOutputProfile": document.Reference(
                pdfdoc.PDFStream(pdfdoc.PDFDictionary({"N": 3}), _srgb_profile())
            ),
        }
    )
    catalog.Metadata = metadata
    catalog.OutputIntents = pdfdoc.PDFArray([intent])
    # reportlab writes only the catalogue keys it lists: add OutputIntents to this one's list.
    catalog.__NoDefault__ = [*type(catalog).__NoDefault__, "OutputIntents"]


def _srgb_profile() -> bytes:
    from PIL import ImageCms

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"
  xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
  xmlns:pdf="http://ns.adobe.com/pdf/1.3/">
<pdfaid:part>2</pdfaid:part>
<pdfaid:conformance>B</pdfaid:conformance>
<dc:format>application/pdf</dc:format>
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li></rdf:Alt></dc:title>
<dc:creator><rdf:Seq><rdf:li>{author}</rdf:li></rdf:Seq></dc:creator>
<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{subject}</rdf:li></rdf:Alt></dc:description>
<pdf:Producer>{producer}</pdf:Producer>
<pdf:Keywords>{keywords}</pdf:Keywords>
<pdf:Trapped>False</pdf:Trapped>
<xmp:CreatorTool>{creator}</xmp:CreatorTool>
<xmp:CreateDate>{when}</xmp:CreateDate>
<xmp:ModifyDate>{when}</xmp:ModifyDate>
</rdf:Description>
</rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""
