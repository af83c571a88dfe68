"""Decree 30/2020 layouts that need the document itself: text written into
the printed blanks ("Số:", "ngày … tháng … năm"), the seal over the leader's
signature, and what a scanned copy lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from signkit.formats.pdf.options import PdfDocOptions
    from signkit.formats.pdf.prepare import PdfBatchConfig

from datetime import datetime
from pathlib import Path
from typing import Any

from signkit.errors import (
    DocumentError,
)
from signkit.formats.pdf.anchor import (
    find_slots,
    font_advance,
    page_words,
)
from signkit.formats.pdf.appearance import (
    MM,
)
from signkit.formats.pdf.presets import get_preset


def slot_layout(
    source: str, index: int, opts: PdfDocOptions, cfg: PdfBatchConfig, now: datetime
) -> tuple[tuple[float, float, float, float], list[tuple[float, str]], float, float]:
    """Box (mm from the page's bottom-left), texts at x offsets, font size and
    baseline for text written into the blanks after printed labels ("Số:", "ngày")."""
    preset = get_preset(opts.preset or "")
    advance = font_advance(cfg.font_path)
    _width, height, words = page_words(source, index + 1, cfg.password)
    found = find_slots(words, list(preset.slot_labels), advance)
    labels = " … ".join(preset.slot_labels)
    if found is None:
        raise DocumentError(f"'{labels}' not found on page {index + 1}", subject=source)
    slots, top, bottom = found
    # The size of the line's own text (word boxes span about 1.04 em here).
    size = min(16.0, max(9.0, round((bottom - top) / 1.04 * 2) / 2))
    default_width = 12 * MM
    if preset.placement == "number-slot":
        slot = slots[0]
        if slot.filled:
            raise DocumentError(
                f"the blank after '{slot.label}' is already filled in", subject=source
            )
        number = (opts.doc_number or "").split("/")[0].strip()
        texts = [(slot, number)]
    else:
        texts = [(slots[0], day_text(now.day)), (slots[1], month_text(now.month))]
        if not slots[2].filled:
            texts.append((slots[2], str(now.year)))
        for slot, _ in texts:
            if slot.filled:
                raise DocumentError(
                    f"the blank after '{slot.label}' is already filled in", subject=source
                )
    left = texts[0][0].left
    right = max((s.right or s.left + default_width) for s, _ in texts)
    centres = [
        (((s.left + (s.right or s.left + default_width)) / 2) - left, text) for s, text in texts
    ]
    pad = 2.0
    rect_mm = (
        left / MM,
        (height - bottom - pad) / MM,
        (right - left) / MM,
        (bottom - top + 2 * pad) / MM,
    )
    # Times New Roman / Liberation Serif: descent 0.216 of ascent + descent 1.107
    baseline = pad + (bottom - top) * 0.216 / 1.107
    return rect_mm, centres, size, baseline


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
    kids = field.get("/Kids")
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
        for annot in page.get("/Annots", ()):
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
