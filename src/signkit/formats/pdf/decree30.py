"""Decree 30/2020 layouts that need the document itself: text written into
the printed blanks ("Số:", "ngày … tháng … năm"), the seal over the leader's
signature, and what a scanned copy lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signkit.formats.pdf.options import PdfDocOptions
    from signkit.formats.pdf.prepare import PdfBatchConfig

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import median
from typing import Any

from signkit.errors import (
    DocumentError,
)
from signkit.formats.pdf.anchor import (
    BLANK_MARKS,
    Advance,
    Match,
    find_slots,
    font_advance,
    page_words,
)
from signkit.formats.pdf.appearance import (
    MM,
)
from signkit.formats.pdf.presets import get_preset


@dataclass(frozen=True)
class SlotLayout:
    """Text written into printed blanks: the box (mm from the page's
    bottom-left), each text at its x offset in the box, the font and size of
    the printed line, and the baseline (points above the box's bottom)."""

    rect_mm: tuple[float, float, float, float]
    texts: list[tuple[float, str]]
    font_path: str
    size: float
    baseline: float


def slot_layout(
    source: str,
    index: int,
    opts: PdfDocOptions,
    cfg: PdfBatchConfig,
    now: datetime,
    reader: Any = None,
) -> SlotLayout:
    """Where the number ("Số: ___/QĐ-UBND") or the date ("ngày ___ tháng ___
    năm") goes: in the printed blanks, in the line's own font (upright or
    italic) and size, on its baseline; the number right-aligned against what
    follows its blank (so it reads "101/QĐ-UBND"), the day and month centred
    in theirs. Refused when a blank is filled in or too narrow for the text."""
    preset = get_preset(opts.preset or "")
    regular = font_advance(cfg.font_path)
    _width, height, words = page_words(source, index + 1, cfg.password)
    labels = " … ".join(preset.slot_labels)
    if not words:
        raise DocumentError(
            f"'{labels}' not found: page {index + 1} has no text (a scanned image?)",
            subject=source,
        )
    found = find_slots(words, list(preset.slot_labels), regular)
    if found is None:
        raise DocumentError(f"'{labels}' not found on page {index + 1}", subject=source)
    italic = font_advance(cfg.italic_font_path) if cfg.italic_font_path else None
    size, is_italic = line_style(found.words, regular, italic)
    advance = italic if is_italic and italic is not None else regular
    font_path = cfg.italic_font_path if is_italic and italic is not None else cfg.font_path
    if is_italic and italic is not None:
        # the characters' positions are shared out by the line's own font
        found = find_slots(words, list(preset.slot_labels), italic) or found
    slots = found.slots
    if preset.placement == "number-slot":
        number = (opts.doc_number or "").split("/")[0].strip()
        wanted = [(slots[0], number, "right")]
    else:
        wanted = [
            (slots[0], day_text(now.day), "centre"),
            (slots[1], month_text(now.month), "centre"),
        ]
        if not slots[2].filled:
            wanted.append((slots[2], str(now.year), "centre"))
    placed: list[tuple[float, str]] = []
    space = advance(" ") * size
    for slot, text, align in wanted:
        if slot.filled:
            raise DocumentError(
                f"the blank after '{slot.label}' is already filled in", subject=source
            )
        width = sum(advance(ch) for ch in text) * size
        if slot.right is None:
            x = slot.left + space  # the blank runs to the end of the line
        elif slot.right - slot.left < width + space / 2:
            # never over the label nor over what follows the blank
            raise DocumentError(
                f"the blank after '{slot.label}' is too narrow for {text!r} "
                f"({(slot.right - slot.left) / MM:.1f} mm)",
                subject=source,
            )
        elif align == "right":
            x = slot.right - width  # "101/QĐ-UBND", as if typed
        else:
            x = (slot.left + slot.right - width) / 2
        placed.append((x, text))
    base, descent = baseline_of(found.words, size, reader, index)
    pad = 2.0
    top = base - size - pad
    bottom = base + descent + pad
    left = min(x for x, _ in placed) - pad
    right = max(x + sum(advance(ch) for ch in t) * size for x, t in placed) + pad
    rect_mm = (left / MM, (height - bottom) / MM, (right - left) / MM, (bottom - top) / MM)
    return SlotLayout(
        rect_mm=rect_mm,
        texts=[(x - left, t) for x, t in placed],
        font_path=font_path,
        size=size,
        baseline=bottom - base,
    )


def line_style(
    words: list[tuple[float, float, float, float, str]],
    regular: Advance,
    italic: Advance | None,
) -> tuple[float, bool]:
    """(font size, italic) of printed words: each word's width over its
    characters' advances gives a size; the face whose sizes agree best is the
    one the line is set in (upright and italic Times differ in width)."""

    def sizes(advance: Advance) -> list[float]:
        out = []
        for x0, _y0, x1, _y1, text in words:
            core = text.strip()
            if len(core) < 2 or set(core) <= BLANK_MARKS | {" "}:
                continue
            units = sum(advance(ch) for ch in text)
            if units > 0:
                out.append((x1 - x0) / units)
        return out

    def spread(values: list[float]) -> float:
        return (max(values) - min(values)) / median(values) if values else 1.0

    upright = sizes(regular)
    slanted = sizes(italic) if italic is not None else []
    is_italic = bool(slanted) and spread(slanted) < spread(upright) - 0.005
    chosen = slanted if is_italic else upright
    if not chosen:
        # only blanks and one-letter words: the box height, as poppler draws it
        chosen = [(w[3] - w[1]) / 1.107 for w in words] or [13.0]
    size = round(median(chosen) * 2) / 2
    return min(28.0, max(6.0, size)), is_italic


def baseline_of(
    words: list[tuple[float, float, float, float, str]],
    size: float,
    reader: Any,
    index: int,
) -> tuple[float, float]:
    """(baseline, descent) of printed words, in display points. poppler's word
    box runs from the baseline minus the font's ascent to the baseline minus
    its descent, as the font descriptor gives them (0.95 and -0.35 em when it
    gives none): the page's fonts whose ascent + descent match the box say
    where the baseline is."""
    bottom = median([w[3] for w in words])
    ratio = median([(w[3] - w[1]) for w in words]) / size
    best: tuple[float, float] | None = None
    for ascent, descent in _page_font_metrics(reader, index):
        miss = abs(ascent + descent - ratio)
        if miss < 0.04 and (best is None or miss < best[0]):
            best = (miss, descent)
    # Times New Roman's own descent when no font of the page explains the box
    descent = best[1] if best is not None else 0.216 * ratio / 1.107
    return bottom - descent * size, 0.216 * size


def _page_font_metrics(reader: Any, index: int) -> set[tuple[float, float]]:
    """(ascent, descent) in em of each font on the page (and its forms), as
    poppler reads them from the font descriptor."""
    out: set[tuple[float, float]] = {(0.95, 0.35)}
    if reader is None:
        return out
    try:
        page = reader.find_page_for_modification(index)[0].get_object()
        resources = _inherited(page, "/Resources")
        pending = [resources.get_object()] if resources is not None else []
        seen = 0
        while pending and seen < 64:
            res = pending.pop()
            seen += 1
            for ref in (res["/Font"] if "/Font" in res else {}).values():
                out.add(_descriptor_metrics(ref.get_object()))
            for ref in (res["/XObject"] if "/XObject" in res else {}).values():
                xobj = ref.get_object()
                if xobj.get("/Subtype") == "/Form" and "/Resources" in xobj:
                    pending.append(xobj["/Resources"].get_object())
    except (KeyError, TypeError, AttributeError, ValueError):
        pass
    return out


def _inherited(node: Any, key: str) -> Any:
    while node is not None:
        if key in node:
            return node[key]
        parent = node.get("/Parent")
        node = parent.get_object() if parent is not None else None
    return None


def _descriptor_metrics(font: Any) -> tuple[float, float]:
    if font.get("/Subtype") == "/Type0":
        font = font["/DescendantFonts"][0].get_object()
    ascent, descent = 0.95, 0.35
    descriptor = font.get("/FontDescriptor")
    if descriptor is None:
        return ascent, descent
    descriptor = descriptor.get_object()
    a = abs(float(descriptor.get("/Ascent", 0))) / 1000
    d = abs(float(descriptor.get("/Descent", 0))) / 1000
    if 0 < a < 3:
        ascent = a
    if 0 < d < 3:
        descent = d
    return ascent, descent


def day_text(day: int) -> str:
    """Decree 30/2020: days under 10 take a leading zero."""
    return f"{day:02d}"


def month_text(month: int) -> str:
    """Decree 30/2020: months 1 and 2 take a leading zero, the others do not."""
    return f"{month:02d}" if month < 3 else str(month)


def fit_image(
    rect_mm: tuple[float, float, float, float], image: str
) -> tuple[float, float, float, float]:
    """Narrow or widen the box to the image's proportions (same height, same centre)."""
    from PIL import Image

    with Image.open(image) as img:
        width, height = img.size
    x, y, w, h = rect_mm
    fitted = h * width / height
    return x + (w - fitted) / 2, y, fitted, h


# Under this height a handwritten signature is hard to make out on paper.
READABLE_MM = 10.0


def fit_between(
    source: str,
    page: int,
    match: Match,
    password: str | None,
    size_mm: tuple[float, float],
    image: str,
    opts: PdfDocOptions,
) -> tuple[tuple[float, float, float, float], tuple[str, ...]]:
    """The leader's signature image between the title ("KT. CHỦ TỊCH / PHÓ CHỦ
    TỊCH") and the printed name (``match``): the image's proportions within
    the preset's box, shrunk to the space there is, centred on the name.
    Returns the box (mm from the page's bottom-left) and a warning when the
    image had to shrink below a readable size."""
    from PIL import Image

    from signkit.formats.pdf.anchor import line_above, parse_pair

    with Image.open(image) as img:
        iw, ih = img.size
    aspect = iw / ih
    w, h = size_mm[0] * MM, size_mm[1] * MM
    bw, bh = (h * aspect, h) if w / h > aspect else (w, w / aspect)
    margin = 1 * MM
    dx, dy = (v * MM for v in parse_pair(opts.anchor_offset, "--anchor-offset"))
    title = line_above(source, page, match, password, reach=bw / 2)
    warnings: tuple[str, ...] = ()
    if title is None:
        bottom = match.top - margin
    else:
        room = match.top - title - 2 * margin
        if room < 3 * MM:
            raise DocumentError(
                f"no room for the signature image between the title and the name "
                f"on page {page} ({max(0.0, room) / MM:.1f} mm)",
                subject=source,
                hint="place it with --rect",
            )
        if bh > room:
            bh, bw = room, room * aspect
        bottom = (title + match.top) / 2 + bh / 2
        if bh < READABLE_MM * MM:
            warnings = (
                f"{source}: the signature image was made {bh / MM:.0f} mm high to fit "
                f"between the title and the name on page {page}, small for a signature "
                f"(under {READABLE_MM:.0f} mm)",
            )
    centre = (match.left + match.right) / 2 + dx
    bottom -= dy
    return (
        ((centre - bw / 2) / MM, (match.page_height - bottom) / MM, bw / MM, bh / MM),
        warnings,
    )


def seal_box(
    reader: Any, opts: PdfDocOptions, source: str
) -> tuple[int, tuple[int, int, int, int]]:
    """Page and box of the organisation's seal: its real size, over the left third
    of the leader's signature image, centred on it vertically (Decree 30/2020)."""
    signatures = reader.embedded_regular_signatures
    if not signatures:
        raise DocumentError(
            "no earlier signature: the organisation signs only documents already "
            "signed by the person with authority (Decree 30/2020, Art. 32.2)",
            subject=source,
        )
    for earlier in signatures:
        problem = _integrity_problem(earlier)
        if problem is not None:
            raise DocumentError(
                f"the earlier signature in field {earlier.field_name} no longer validates "
                f"({problem}); not signing over it",
                subject=source,
            )
    leader = None
    for earlier in reversed(signatures):
        widget = _widget(earlier.sig_field)
        if opts.over_field is not None:
            if earlier.field_name == opts.over_field:
                leader = (earlier, widget)
                break
        elif widget is not None and _has_image(widget):
            leader = (earlier, widget)
            break
    if leader is None or leader[1] is None:
        wanted = (
            f"field {opts.over_field}" if opts.over_field else "an earlier signature with an image"
        )
        raise DocumentError(f"no {wanted} to place the seal over", subject=source)
    _, widget = leader
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise DocumentError("the leader's signature has no visible box", subject=source)
    diameter = float(opts.seal_mm or 0) * MM
    right = x1 + (x2 - x1) / 3
    bottom = (y1 + y2) / 2 - diameter / 2
    index = _widget_page(reader, widget)
    if index is None:
        raise DocumentError("cannot find the page of the leader's signature", subject=source)
    return index, (round(right - diameter), round(bottom), round(right), round(bottom + diameter))


def _integrity_problem(sig: Any) -> str | None:
    """Why an earlier signature fails (digest, signature value, coverage, later
    changes), or None when it still validates; trust is not judged here."""
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    try:
        sig.compute_integrity_info()
        summary = sig.summarise_integrity_info()
        content_type = sig.signed_data["encap_content_info"]["content_type"].native
        intact, valid = validate_sig_integrity(
            sig.signer_info, sig.signer_cert, content_type, sig.compute_digest()
        )
    except (SignatureValidationError, ValueError, KeyError, TypeError) as exc:
        return f"cannot be checked: {str(exc)[:120]}"
    if not intact:
        return "the signed bytes changed"
    if not valid:
        return "the signature value does not match"
    if summary.get("coverage") not in (
        SignatureCoverageLevel.ENTIRE_REVISION,
        SignatureCoverageLevel.ENTIRE_FILE,
    ):
        return "it does not cover its revision"
    if summary.get("docmdp_ok") is False:
        return "later changes are not allowed by its certification"
    level = summary.get("modification_level")
    if level is not None and level > ModificationLevel.FORM_FILLING:
        return "the document was changed after it (annotations or content)"
    return None


def _widget(field: Any) -> Any:
    if "/Rect" in field:
        return field
    kids = field["/Kids"] if "/Kids" in field else None
    return kids[0].get_object() if kids else None


def _has_image(widget: Any) -> bool:
    """Whether the widget's normal appearance draws an image (searched through forms)."""
    try:
        ap = widget["/AP"]["/N"].get_object()
    except (KeyError, AttributeError):
        return False
    return _stream_has_image(ap, 0)


def _stream_has_image(stream: Any, depth: int) -> bool:
    if depth > 4:
        return False
    try:
        xobjects = stream["/Resources"]["/XObject"]
    except (KeyError, TypeError):
        return False
    for ref in xobjects.values():
        obj = ref.get_object()
        subtype = obj.get("/Subtype")
        if subtype == "/Image" or (subtype == "/Form" and _stream_has_image(obj, depth + 1)):
            return True
    return False


def _widget_page(reader: Any, widget: Any) -> int | None:
    count = int(reader.root["/Pages"]["/Count"])
    for index in range(count):
        page = reader.find_page_for_modification(index)[0].get_object()
        for annot in page["/Annots"] if "/Annots" in page else ():
            if annot.get_object() is widget:
                return index
    return None


def scan_warnings(path: Path) -> list[str]:
    """What falls short of a scan for an electronic copy (Decree 30/2020):
    PDF 1.4 or later, colour, at least 200 dpi (page 1's images, by pdfimages)."""
    import shutil
    import subprocess

    problems: list[str] = []
    with path.open("rb") as fh:
        head = fh.read(16)
    try:
        version = float(head[5:8].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        version = 0.0
    if version < 1.4:
        problems.append(f"PDF version {head[5:8].decode('ascii', 'replace')} is below 1.4")
    tool = shutil.which("pdfimages")
    if tool is None:
        return [*problems, "cannot check colour and resolution (pdfimages not installed)"]
    proc = subprocess.run(  # noqa: S603 (fixed tool, file path argument)
        [tool, "-list", "-f", "1", "-l", "1", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    rows = [line.split() for line in proc.stdout.splitlines()[2:] if line.split()]
    images = [r for r in rows if len(r) >= 14 and r[2] == "image"]
    if not images:
        return [*problems, "page 1 has no scanned image"]
    if all(r[6] == "1" for r in images):
        problems.append("the scan is not in colour")
    resolutions = [
        min(int(r[12]), int(r[13])) for r in images if r[12].isdigit() and r[13].isdigit()
    ]
    ppi = min(resolutions, default=0)
    if resolutions and ppi < 200:
        problems.append(f"the scan is {ppi} dpi (under 200)")
    return problems
