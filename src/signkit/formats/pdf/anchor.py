"""Find where to put a signature by the text on the page ("Trần Thị Bình", "Số:").

Text positions come from poppler's ``pdftotext -bbox`` (installed with the
referee tools; a clear error says so when it is missing). Matching is done
on NFC-normalised lines, so decomposed and precomposed Vietnamese match.
"""

from __future__ import annotations

import functools
import html
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from signkit.errors import InputFormatError, UsageError
from signkit.faults import input_faults

MM = 72 / 25.4
POSITIONS = ("above", "below", "left", "right", "over")
_WORD = re.compile(
    r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>'
)
_PAGE = re.compile(r'<page width="([\d.]+)" height="([\d.]+)">')
# Code points that Vietnamese text typed in TCVN3 (ABC) or VNI fonts turns
# into when read as Unicode: letters with diacritics become Latin-1 symbols.
# Latin-1 letters that genuine Unicode Vietnamese also uses.
_VIETNAMESE_LATIN1 = {chr(c) for c in (
    0xC0, 0xC1, 0xC2, 0xC3, 0xC8, 0xC9, 0xCA, 0xCC, 0xCD, 0xD2, 0xD3, 0xD4, 0xD5, 0xD9, 0xDA,
    0xDD, 0xE0, 0xE1, 0xE2, 0xE3, 0xE8, 0xE9, 0xEA, 0xEC, 0xED, 0xF2, 0xF3, 0xF4, 0xF5, 0xF9,
    0xFA, 0xFD,
)}  # fmt: skip
_LEGACY = {chr(c) for c in range(0xA1, 0x100)} - _VIETNAMESE_LATIN1
_VIETNAMESE = set("ăâđêôơưĂÂĐÊÔƠƯ")


@dataclass(frozen=True)
class Match:
    """Where the anchor text sits, in page display points (origin top-left)."""

    page_width: float
    page_height: float
    left: float
    top: float
    right: float
    bottom: float


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def page_words(
    path: str, page: int, password: str | None
) -> tuple[float, float, list[tuple[float, float, float, float, str]]]:
    """(width, height, words) of one page (1-based), via pdftotext -bbox."""
    tool = shutil.which("pdftotext")
    if tool is None:
        raise UsageError(
            "--anchor-text needs pdftotext (Debian package poppler-utils)",
            hint="install poppler-utils, or place the signature with --rect",
        )
    cmd = [tool, "-q", "-f", str(page), "-l", str(page), "-bbox", "-enc", "UTF-8"]
    stdin = None
    if password is not None:
        # Never on pdftotext's command line (any local user can read it): it
        # reads a decrypted copy on its standard input instead.
        stdin = _decrypted_copy(path, password)
    proc = subprocess.run(  # noqa: S603 (fixed tool, our arguments)
        [*cmd, "-" if stdin is not None else path, "-"],
        input=stdin,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise InputFormatError("cannot read the page text (pdftotext failed)", subject=path)
    text = proc.stdout.decode("utf-8", "replace")
    size = _PAGE.search(text)
    if size is None:
        raise InputFormatError(f"page {page} has no text layer", subject=path)
    words = [
        (float(a), float(b), float(c), float(d), _nfc(html.unescape(w)))
        for a, b, c, d, w in _WORD.findall(text)
    ]
    return float(size.group(1)), float(size.group(2)), words


def _decrypted_copy(path: str, password: str) -> bytes:
    """The PDF at ``path`` decrypted with ``password``, in memory."""
    import io

    from pyhanko.pdf_utils.crypt import AuthStatus
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    with input_faults(path, "cannot read the page text"), open(path, "rb") as fh:
        reader = PdfFileReader(fh, strict=False)
        if reader.encrypted and reader.decrypt(password).status == AuthStatus.FAILED:
            raise InputFormatError("wrong password for the encrypted PDF", subject=path)
        buffer = io.BytesIO()
        copy_into_new_writer(reader).write(buffer)
    return buffer.getvalue()


def _lines(
    words: list[tuple[float, float, float, float, str]],
) -> list[list[tuple[float, float, float, float, str]]]:
    lines: list[list[tuple[float, float, float, float, str]]] = []
    for word in sorted(words, key=lambda w: (round(w[1]), w[0])):
        if lines and abs(lines[-1][0][1] - word[1]) < 2.0:
            lines[-1].append(word)
        else:
            lines.append([word])
    return lines


Advance = Callable[[str], float]


@functools.cache
def font_advance(font_path: str) -> Advance:
    """Relative advance width of a character in this font (Times New Roman and
    Liberation Serif share their metrics, and Decree 30 documents use the former)."""
    from fontTools.ttLib import TTFont

    font = TTFont(font_path, lazy=True)
    cmap = font.getBestCmap() or {}
    hmtx = font["hmtx"]
    units = float(font["head"].unitsPerEm)
    average = 0.5

    def advance(ch: str) -> float:
        glyph = cmap.get(ord(ch))
        if glyph is None:
            base = unicodedata.normalize("NFD", ch)[:1]
            glyph = cmap.get(ord(base)) if base else None
        return float(hmtx[glyph][0]) / units if glyph is not None else average

    return advance


def _even(_ch: str) -> float:
    return 1.0


def _line_chars(
    line: list[tuple[float, float, float, float, str]], advance: Advance
) -> tuple[str, list[tuple[float, float]], list[int]]:
    """The line's text, each character's (x start, x end) and the index (in
    the line, left to right) of the word it belongs to (-1 for the space put
    between words): pdftotext gives word boxes only, so a word's width is
    shared out by the glyphs' advances."""
    text = ""
    xs: list[tuple[float, float]] = []
    owners: list[int] = []
    for n, (x0, _y0, x1, _y1, w) in enumerate(sorted(line, key=lambda w: w[0])):
        if text:
            text += " "
            xs.append((x0, x0))
            owners.append(-1)
        widths = [advance(ch) for ch in w]
        total = sum(widths) or 1.0
        x = x0
        for width in widths:
            step = (x1 - x0) * width / total
            xs.append((x, x + step))
            owners.append(n)
            x += step
        text += w
    return text, xs, owners


def _line_text(
    line: list[tuple[float, float, float, float, str]], advance: Advance
) -> tuple[str, list[tuple[float, float]]]:
    text, xs, _owners = _line_chars(line, advance)
    return text, xs


def _fold(text: str) -> str:
    """Lower case, character for character (so positions still line up)."""
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def find_on_page(
    words: list[tuple[float, float, float, float, str]],
    anchor: str,
    advance: Advance = _even,
    *,
    ignore_case: bool = False,
) -> list[tuple[float, float, float, float]]:
    """Boxes (left, top, right, bottom) of every occurrence, in reading order."""
    found = []
    needle = _nfc(anchor).strip()
    if ignore_case:
        needle = _fold(needle)
    for line in _lines(words):
        text, xs = _line_text(line, advance)
        if ignore_case:
            text = _fold(text)
        top = min(w[1] for w in line)
        bottom = max(w[3] for w in line)
        start = text.find(needle)
        while start >= 0:
            end = start + len(needle) - 1
            found.append((xs[start][0], top, xs[end][1], bottom))
            start = text.find(needle, start + 1)
    return found


# What a printed blank is drawn with, besides white space: dot leaders,
# underscores, ellipses.
BLANK_MARKS = frozenset(".…_·")


@dataclass(frozen=True)
class Slot:
    """The blank after a label on a line ("Số: ____"), in display points."""

    label: str
    left: float
    """Where the label ends."""
    right: float | None
    """Where the text after the blank begins; None when the blank ends the line."""
    filled: bool
    """A number already stands in the blank (e.g. a printed year)."""


@dataclass(frozen=True)
class SlotLine:
    """A printed line holding every label, with its blanks."""

    slots: list[Slot]
    top: float
    bottom: float
    words: list[tuple[float, float, float, float, str]]
    """The words the labels and the text after each blank belong to (the
    line's font and size are judged on these)."""


def find_slots(
    words: list[tuple[float, float, float, float, str]],
    labels: list[str],
    advance: Advance = _even,
) -> SlotLine | None:
    """The blanks after each label on the first line holding all labels in
    order with none of the blanks filled in (else the first such line, filled).

    A blank is the white space, dots, underscores or tab gap after a label, up
    to the next printed character; it is filled when that character is a digit."""
    wanted = [_nfc(label) for label in labels]
    first_filled: SlotLine | None = None
    for line in _lines(words):
        ordered = sorted(line, key=lambda w: w[0])
        text, xs, owners = _line_chars(line, advance)
        slots: list[Slot] = []
        touched: set[int] = set()
        pos = 0
        for label in wanted:
            start = text.find(label, pos)
            if start < 0:
                break
            end = start + len(label)
            nxt = end
            while nxt < len(text) and (text[nxt].isspace() or text[nxt] in BLANK_MARKS):
                nxt += 1
            right = xs[nxt][0] if nxt < len(text) else None
            filled = nxt < len(text) and text[nxt].isdigit()
            slots.append(Slot(label, xs[end - 1][1], right, filled))
            touched.update(o for o in owners[start:end] if o >= 0)
            if nxt < len(text) and owners[nxt] >= 0:
                touched.add(owners[nxt])
            pos = nxt
        if len(slots) != len(wanted):
            continue
        found = SlotLine(
            slots=slots,
            top=min(w[1] for w in line),
            bottom=max(w[3] for w in line),
            words=[ordered[i] for i in sorted(touched)],
        )
        # a line whose last blank holds a printed year ("năm 2026") is not filled in
        if not any(s.filled for s in slots[: max(1, len(slots) - 1)]):
            return found
        if first_filled is None:
            first_filled = found
    return first_filled


def looks_legacy(words: list[tuple[float, float, float, float, str]]) -> bool:
    """True when the page text looks like TCVN3/VNI bytes rather than Unicode Vietnamese."""
    chars = "".join(w[4] for w in words)
    if not chars:
        return False
    legacy = sum(ch in _LEGACY for ch in chars)
    modern = sum(ch in _VIETNAMESE or unicodedata.combining(ch) > 0 for ch in chars)
    return legacy >= 3 and legacy > modern


def locate(
    path: str,
    anchor: str,
    *,
    pages: list[int],
    occurrence: int | None,
    password: str | None,
    advance: Advance = _even,
    ignore_case: bool = False,
) -> tuple[int, Match]:
    """(1-based page, match) of the anchor: the last occurrence unless told which."""
    legacy_pages = []
    blank_pages = []
    for page in pages:
        width, height, words = page_words(path, page, password)
        if not words:
            blank_pages.append(page)
        boxes = find_on_page(words, anchor, advance, ignore_case=ignore_case)
        if boxes:
            if occurrence is None:
                box = boxes[-1]
            elif 1 <= occurrence <= len(boxes):
                box = boxes[occurrence - 1]
            else:
                raise InputFormatError(
                    f"anchor text {anchor!r} occurs {len(boxes)} time(s) on page {page}, "
                    f"not {occurrence}",
                    subject=path,
                )
            return page, Match(width, height, *box)
        if looks_legacy(words):
            legacy_pages.append(page)
    if legacy_pages:
        raise InputFormatError(
            f"anchor text {anchor!r} not found: the text of page(s) "
            f"{', '.join(map(str, legacy_pages))} is in a legacy Vietnamese encoding "
            "(TCVN3/VNI) and cannot be searched",
            subject=path,
            hint="place the signature with --rect, or convert the document to Unicode",
        )
    if blank_pages == pages:
        raise InputFormatError(
            f"anchor text {anchor!r} not found: {_no_text(pages)}",
            subject=path,
            hint="place the signature with --rect",
        )
    where = f"page {pages[0]}" if len(pages) == 1 else "any page"
    raise InputFormatError(f"anchor text {anchor!r} not found on {where}", subject=path)


def _no_text(pages: list[int]) -> str:
    which = f"page {pages[0]}" if len(pages) == 1 else f"pages {min(pages)}-{max(pages)}"
    return f"{which} has no text to search (a scanned image?)"


def line_above(
    path: str, page: int, match: Match, password: str | None, *, reach: float
) -> float | None:
    """Bottom (display points) of the nearest printed line above ``match`` that
    has words within ``reach`` points of its centre (the signer's title above
    the name), or None when nothing is printed above it in that column."""
    _width, _height, words = page_words(path, page, password)
    centre = (match.left + match.right) / 2
    above = [
        w[3]
        for w in words
        if w[3] <= match.top + 0.5 and w[2] >= centre - reach and w[0] <= centre + reach
    ]
    return max(above, default=None)


def box_for(
    match: Match, *, position: str, size_mm: tuple[float, float], offset_mm: tuple[float, float]
) -> tuple[float, float, float, float]:
    """The signature box as (x, y, w, h) in mm from the visible page's bottom-left."""
    w, h = size_mm[0] * MM, size_mm[1] * MM
    dx, dy = offset_mm[0] * MM, offset_mm[1] * MM
    cx = (match.left + match.right) / 2
    cy = (match.top + match.bottom) / 2
    if position == "above":
        left, top = cx - w / 2, match.top - h
    elif position == "below":
        left, top = cx - w / 2, match.bottom
    elif position == "left":
        left, top = match.left - w, cy - h / 2
    elif position == "right":
        left, top = match.right, cy - h / 2
    else:
        left, top = cx - w / 2, cy - h / 2
    left += dx
    top -= dy  # display y grows downwards; offsets are "up"
    bottom_from_base = match.page_height - (top + h)
    return left / MM, bottom_from_base / MM, size_mm[0], size_mm[1]


def parse_pair(text: str, what: str) -> tuple[float, float]:
    """'A,B' numbers in mm."""
    try:
        a, b = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{what} takes two numbers in mm, e.g. 60,20", subject=text) from None
    return a, b
