"""The incremental update of an invisible signature, written without pyHanko,
for documents whose structure is plain: not encrypted, no form yet, no
document-level extensions or XMP metadata, cross-reference sections that
read cleanly. It writes what pyHanko writes for the same signature (the same
objects, numbered alike, with the same values), in a fraction of the time:
the original's values are copied byte for byte and only the objects a
signature needs are added or extended.

Anything else, and anything this reader is not sure of, raises ``NotPlain``
and the document goes to pyHanko, which reads damaged files too.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from signkit.formats.pdf.options import PdfDocOptions


class NotPlain(Exception):
    """The document needs pyHanko (the reason is for tests and debugging)."""


def _int(digits: bytes) -> int:
    """The integer these (sign and) digits write, NotPlain when too long."""
    if len(digits.lstrip(b"+-")) > _MAX_DIGITS:
        raise NotPlain("an integer too long")
    return int(digits)


_WHITESPACE = b"\x00\t\n\x0c\r "
_DELIMITERS = b"()<>[]{}/%"
_END_OF_TOKEN = frozenset(_WHITESPACE + _DELIMITERS)
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)")
_REFERENCE = re.compile(rb"(\d+)\s+(\d+)\s+R(?=[\x00\t\n\x0c\r ()<>\[\]{}/%]|$)")
_OBJECT_HEADER = re.compile(rb"(\d+)\s+(\d+)\s+obj(?=[\x00\t\n\x0c\r ()<>\[\]{}/%])")
_XREF_ENTRY = re.compile(rb"(\d{10}) (\d{5}) ([nf])[\r\n ]{1,2}")
_ESCAPES = {
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("("): b"(",
    ord(")"): b")",
    ord("\\"): b"\\",
}
# Decoded streams are small here (cross-reference and object streams).
_MAX_DECODED = 64 << 20
_MAX_SECTIONS = 4096
_MAX_DEPTH = 64
_MAX_DIGITS = 20
"""Digits of an integer this reader takes (offsets, counts, object numbers);
a longer one is not a plain document's (and Python refuses to convert
4,300 or more)."""
MAX_OBJECT_NUMBER = 8_388_607
"""The largest object number a PDF may have (ISO 32000-1 Annex C; PDF/A
keeps it); a signature's objects are numbered past /Size."""
_BYTE_RANGE_WIDTH = 48

# What pyHanko adds to the catalog for PAdES signatures.
_ESIC = b"<<\n/ESIC <<\n/Type /DeveloperExtensions\n/BaseVersion /1.7\n/ExtensionLevel 1\n>>\n>>"
# Trailer keys the update writes itself; any other entry is carried over.
_MANAGED_TRAILER = frozenset(
    {
        "Size",
        "Prev",
        "Root",
        "Info",
        "ID",
        "Encrypt",
        "XRefStm",
        "Type",
        "W",
        "Index",
        "Filter",
        "DecodeParms",
        "Length",
    }
)


class Name(str):
    """A PDF name (without the slash, #-escapes decoded)."""

    __slots__ = ()


class String(bytes):
    """A PDF string's bytes."""


@dataclass(frozen=True)
class Ref:
    """An indirect reference."""

    num: int
    gen: int


class Dict(dict[str, Any]):
    """A PDF dictionary; ``raw`` keeps each entry's key and value as written."""

    raw: dict[str, tuple[bytes, bytes]]

    def __init__(self) -> None:
        super().__init__()
        self.raw = {}


def _skip(data: bytes, pos: int) -> int:
    """Past whitespace and comments."""
    n = len(data)
    while pos < n:
        c = data[pos]
        if c in _WHITESPACE:
            pos += 1
        elif c == 0x25:  # %
            while pos < n and data[pos] not in (0x0A, 0x0D):
                pos += 1
        else:
            break
    return pos


def _token_end(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n and data[pos] not in _END_OF_TOKEN:
        pos += 1
    return pos


def parse(data: bytes, pos: int, depth: int = 0) -> tuple[Any, int]:
    """The object at ``pos`` (after whitespace) and the offset past it."""
    if depth > _MAX_DEPTH:
        raise NotPlain("objects nested too deeply")
    pos = _skip(data, pos)
    if pos >= len(data):
        raise NotPlain("unexpected end of data")
    c = data[pos]
    if c == 0x3C:  # <
        if data.startswith(b"<<", pos):
            return _parse_dict(data, pos + 2, depth)
        end = data.find(b">", pos)
        if end < 0:
            raise NotPlain("unterminated hex string")
        digits = re.sub(rb"[\x00\t\n\x0c\r ]", b"", data[pos + 1 : end])
        if len(digits) % 2:
            digits += b"0"
        try:
            return String(bytes.fromhex(digits.decode("ascii"))), end + 1
        except ValueError:
            raise NotPlain("bad hex string") from None
    if c == 0x28:  # (
        return _parse_literal(data, pos + 1)
    if c == 0x5B:  # [
        items: list[Any] = []
        pos += 1
        while True:
            pos = _skip(data, pos)
            if pos >= len(data):
                raise NotPlain("unterminated array")
            if data[pos] == 0x5D:
                return items, pos + 1
            item, pos = parse(data, pos, depth + 1)
            items.append(item)
    if c == 0x2F:  # /
        end = _token_end(data, pos + 1)
        return _name(data[pos + 1 : end]), end
    if c in b"+-.0123456789":
        ref = _REFERENCE.match(data, pos)
        if ref:
            return Ref(_int(ref[1]), _int(ref[2])), ref.end()
        number = _NUMBER.match(data, pos)
        if number is None:
            raise NotPlain("bad number")
        text = number[0]
        value: Any = float(text) if b"." in text else _int(text)
        return value, number.end()
    end = _token_end(data, pos)
    word = data[pos:end]
    if word in (b"true", b"false"):
        return word == b"true", end
    if word == b"null":
        return None, end
    raise NotPlain(f"unexpected token {word[:20]!r}")


def _name(token: bytes) -> Name:
    if b"#" in token:
        try:
            token = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), token)
        except ValueError:
            raise NotPlain("bad name") from None
    return Name(token.decode("latin-1"))


def _parse_dict(data: bytes, pos: int, depth: int) -> tuple[Dict, int]:
    result = Dict()
    while True:
        pos = _skip(data, pos)
        if data.startswith(b">>", pos):
            return result, pos + 2
        if pos >= len(data) or data[pos] != 0x2F:
            raise NotPlain("dictionary key is not a name")
        key_start = pos
        key_end = _token_end(data, pos + 1)
        key = _name(data[pos + 1 : key_end])
        start = _skip(data, key_end)
        value, pos = parse(data, start, depth + 1)
        if key in result:
            raise NotPlain(f"key /{key} given twice")
        result[key] = value
        result.raw[key] = (data[key_start:key_end], data[start:pos])


def _parse_literal(data: bytes, pos: int) -> tuple[String, int]:
    out = bytearray()
    depth = 1
    n = len(data)
    while pos < n:
        c = data[pos]
        if c == 0x5C:  # backslash
            pos += 1
            if pos >= n:
                break
            e = data[pos]
            if e in _ESCAPES:
                out += _ESCAPES[e]
                pos += 1
            elif 0x30 <= e <= 0x37:
                digits = re.match(rb"[0-7]{1,3}", data[pos : pos + 3])
                assert digits is not None  # noqa: S101 - e is an octal digit
                out.append(int(digits[0], 8) & 0xFF)
                pos += len(digits[0])
            elif e == 0x0D:
                pos += 2 if data[pos + 1 : pos + 2] == b"\n" else 1
            elif e == 0x0A:
                pos += 1
            else:
                out.append(e)
                pos += 1
            continue
        if c == 0x28:
            depth += 1
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return String(bytes(out)), pos + 1
        out.append(c)
        pos += 1
    raise NotPlain("unterminated string")


def _decode_stream(info: Dict, raw: bytes) -> bytes:
    """A stream's data: no filter, or Flate with an optional PNG predictor."""
    filters = info.get("Filter")
    params = info.get("DecodeParms")
    if isinstance(filters, list):
        if len(filters) > 1:
            raise NotPlain("stream with several filters")
        filters = filters[0] if filters else None
        params = params[0] if isinstance(params, list) and params else params
    if filters is None:
        return raw
    if filters != "FlateDecode":
        raise NotPlain(f"stream filter /{filters}")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(raw, _MAX_DECODED)
    except zlib.error:
        raise NotPlain("damaged Flate stream") from None
    if inflater.unconsumed_tail:
        raise NotPlain("stream too large")
    if params is None:
        return data
    if not isinstance(params, Dict):
        raise NotPlain("stream parameters are not a dictionary")
    predictor = params.get("Predictor", 1)
    if predictor == 1:
        return data
    if not isinstance(predictor, int) or predictor < 10:
        raise NotPlain(f"stream predictor {predictor}")
    if params.get("Colors", 1) != 1 or params.get("BitsPerComponent", 8) != 8:
        raise NotPlain("stream predictor with colours")
    columns = params.get("Columns", 1)
    if not isinstance(columns, int) or columns < 1:
        raise NotPlain("bad predictor columns")
    return _unpredict(data, columns)


def _unpredict(data: bytes, columns: int) -> bytes:
    """Undo PNG row filters (one byte per pixel)."""
    out = bytearray()
    previous = bytearray(columns)
    stride = columns + 1
    if len(data) % stride:
        raise NotPlain("predicted stream of partial rows")
    for row_start in range(0, len(data), stride):
        kind = data[row_start]
        row = bytearray(data[row_start + 1 : row_start + stride])
        if kind == 0:
            pass
        elif kind == 1:
            for i in range(1, columns):
                row[i] = (row[i] + row[i - 1]) & 0xFF
        elif kind == 2:
            for i in range(columns):
                row[i] = (row[i] + previous[i]) & 0xFF
        elif kind == 3:
            for i in range(columns):
                left = row[i - 1] if i else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(columns):
                a = row[i - 1] if i else 0
                b = previous[i]
                c = previous[i - 1] if i else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[i] = (row[i] + pred) & 0xFF
        else:
            raise NotPlain(f"PNG row filter {kind}")
        out += row
        previous = row
    return bytes(out)


class Document:
    """A PDF read as far as an invisible signature needs: its cross-reference
    sections (newest first) and the objects asked for."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.header_version = _header_version(data)
        self.startxref = _last_startxref(data)
        self.entries: dict[int, tuple[Any, ...]] = {}
        self.trailer: Dict | None = None
        self.stream_xref = False
        self._object_streams: dict[int, tuple[bytes, list[int], int]] = {}
        self._read_sections()

    def _read_sections(self) -> None:
        offset: Any = self.startxref
        seen: set[int] = set()
        while offset is not None:
            if not isinstance(offset, int) or offset in seen or len(seen) > _MAX_SECTIONS:
                raise NotPlain("cross-reference chain loops or is not a number")
            seen.add(offset)
            if not 0 <= offset < len(self.data):
                raise NotPlain("cross-reference offset outside the file")
            pos = _skip(self.data, offset)
            if self.data.startswith(b"xref", pos):
                trailer = self._read_table(pos + 4)
                stream = False
            else:
                trailer = self._read_stream_section(offset)
                stream = True
            if "XRefStm" in trailer:
                raise NotPlain("hybrid cross-reference file")
            if self.trailer is None:
                self.trailer, self.stream_xref = Dict(), stream
            # An entry the newest trailer lacks is read from an older one (as
            # pyHanko reads trailers).
            for key, value in trailer.items():
                if key not in self.trailer:
                    self.trailer[key] = value
                    self.trailer.raw[key] = trailer.raw[key]
            offset = trailer.get("Prev")

    def _keep(self, num: int, entry: tuple[Any, ...]) -> None:
        # newest section first: an entry already seen wins
        self.entries.setdefault(num, entry)

    def _read_table(self, pos: int) -> Dict:
        data = self.data
        while True:
            pos = _skip(data, pos)
            if data.startswith(b"trailer", pos):
                trailer, _ = parse(data, pos + 7)
                if not isinstance(trailer, Dict):
                    raise NotPlain("trailer is not a dictionary")
                return trailer
            header = re.compile(rb"(\d+)[ \t]+(\d+)[ \t]*[\r\n]+").match(data, pos)
            if header is None:
                raise NotPlain("bad cross-reference subsection")
            first, count = _int(header[1]), _int(header[2])
            pos = header.end()
            for num in range(first, first + count):
                entry = _XREF_ENTRY.match(data, pos)
                if entry is None:
                    raise NotPlain("bad cross-reference entry")
                pos = entry.end()
                if entry[3] == b"n":
                    self._keep(num, ("n", int(entry[1]), int(entry[2])))
                else:
                    self._keep(num, ("f",))

    def _read_stream_section(self, offset: int) -> Dict:
        info, raw = self._stream_at(offset, None)
        if info.get("Type") != "XRef":
            raise NotPlain("startxref points at neither a table nor an xref stream")
        data = _decode_stream(info, raw)
        widths = info.get("W")
        size = info.get("Size")
        if (
            not isinstance(widths, list)
            or len(widths) != 3
            or not all(isinstance(w, int) and 0 <= w <= 8 for w in widths)
            or not isinstance(size, int)
        ):
            raise NotPlain("bad cross-reference stream /W or /Size")
        index = info.get("Index", [0, size])
        if (
            not isinstance(index, list)
            or len(index) % 2
            or not all(isinstance(i, int) and i >= 0 for i in index)
        ):
            raise NotPlain("bad cross-reference stream /Index")
        w0, w1, w2 = widths
        row = w0 + w1 + w2
        pos = 0
        for first, count in zip(index[::2], index[1::2], strict=True):
            for num in range(first, first + count):
                if pos + row > len(data):
                    raise NotPlain("cross-reference stream too short")
                kind = int.from_bytes(data[pos : pos + w0], "big") if w0 else 1
                f1 = int.from_bytes(data[pos + w0 : pos + w0 + w1], "big")
                f2 = int.from_bytes(data[pos + w0 + w1 : pos + row], "big")
                pos += row
                if kind == 1:
                    self._keep(num, ("n", f1, f2))
                elif kind == 2:
                    self._keep(num, ("c", f1, f2))
                elif kind == 0:
                    self._keep(num, ("f",))
                else:
                    raise NotPlain(f"cross-reference entry of type {kind}")
        return info

    def _stream_at(self, offset: int, expected: Ref | None) -> tuple[Dict, bytes]:
        """The stream object at ``offset``: its dictionary and raw data."""
        value, pos = self._object_at(offset, expected)
        if not isinstance(value, Dict):
            raise NotPlain("stream object without a dictionary")
        pos = _skip(self.data, pos)
        if not self.data.startswith(b"stream", pos):
            raise NotPlain("no stream where one was expected")
        pos += 6
        if self.data.startswith(b"\r\n", pos):
            pos += 2
        elif self.data.startswith(b"\n", pos):
            pos += 1
        else:
            raise NotPlain("stream keyword not followed by an end of line")
        length = value.get("Length")
        if not isinstance(length, int) or length < 0 or pos + length > len(self.data):
            raise NotPlain("stream /Length is not a direct length inside the file")
        end = _skip(self.data, pos + length)
        if not self.data.startswith(b"endstream", end):
            raise NotPlain("stream /Length does not end at endstream")
        return value, self.data[pos : pos + length]

    def _object_at(self, offset: int, expected: Ref | None) -> tuple[Any, int]:
        header = _OBJECT_HEADER.match(self.data, offset)
        if header is None:
            raise NotPlain("no object where the cross-reference points")
        num, gen = _int(header[1]), _int(header[2])
        if expected is not None and (num, gen) != (expected.num, expected.gen):
            raise NotPlain("the cross-reference points at another object")
        value, pos = parse(self.data, header.end())
        return value, pos

    def get(self, ref: Any) -> Any:
        """The value of ``ref`` (direct values are returned as they are)."""
        if not isinstance(ref, Ref):
            return ref
        entry = self.entries.get(ref.num, ("f",))
        if entry[0] == "f":
            return None
        if entry[0] == "n":
            if entry[2] != ref.gen:
                return None
            value, pos = self._object_at(entry[1], ref)
            after = _skip(self.data, pos)
            if self.data.startswith(b"stream", after):
                raise NotPlain("a stream where a dictionary was expected")
            if not self.data.startswith(b"endobj", after):
                raise NotPlain("object not closed by endobj")
            return value
        if ref.gen != 0:
            return None
        data, offsets, first = self._object_stream(entry[1])
        if entry[2] >= len(offsets):
            raise NotPlain("object stream index out of range")
        value, _ = parse(data, first + offsets[entry[2]])
        return value

    def _object_stream(self, num: int) -> tuple[bytes, list[int], int]:
        if num not in self._object_streams:
            entry = self.entries.get(num)
            if entry is None or entry[0] != "n":
                raise NotPlain("object stream not found")
            info, raw = self._stream_at(entry[1], Ref(num, entry[2]))
            data = _decode_stream(info, raw)
            count, first = info.get("N"), info.get("First")
            if not isinstance(count, int) or not isinstance(first, int) or count < 0:
                raise NotPlain("bad object stream /N or /First")
            numbers = re.findall(rb"\d+", data[:first])
            if len(numbers) < 2 * count:
                raise NotPlain("object stream header too short")
            offsets = [_int(n) for n in numbers[1 : 2 * count : 2]]
            self._object_streams[num] = (data, offsets, first)
        return self._object_streams[num]


def _header_version(data: bytes) -> tuple[int, int]:
    match = re.match(rb"%PDF-(\d)\.(\d)", data)
    if match is None:
        raise NotPlain("the header is not at the start of the file")
    return int(match[1]), int(match[2])


def _last_startxref(data: bytes) -> int:
    tail_start = max(0, len(data) - 1024)
    at = data.rfind(b"startxref", tail_start)
    if at < 0:
        raise NotPlain("no startxref near the end")
    match = re.compile(rb"startxref\s+(\d+)\s*%%EOF\s*\Z").match(data, at)
    if match is None:
        raise NotPlain("data after the last %%EOF, or no %%EOF")
    return _int(match[1])


def _text(value: Any) -> str:
    """A PDF text string's text (UTF-16 or UTF-8 with a byte-order mark, or
    plain ASCII; other PDFDocEncoding bytes are left to pyHanko)."""
    if not isinstance(value, String):
        raise NotPlain("text entry is not a string")
    if value.startswith(b"\xfe\xff"):
        try:
            return value[2:].decode("utf-16-be")
        except UnicodeDecodeError:
            raise NotPlain("bad UTF-16 text") from None
    if value.startswith(b"\xef\xbb\xbf"):
        try:
            return value[3:].decode("utf-8")
        except UnicodeDecodeError:
            raise NotPlain("bad UTF-8 text") from None
    if re.fullmatch(rb"[\x20-\x7e\t\n\r]*", value) is None:
        raise NotPlain("text in PDFDocEncoding beyond ASCII")
    return value.decode("ascii")


def text_string(text: str) -> bytes:
    """``text`` as a PDF string: literal when printable ASCII, else UTF-16BE."""
    if re.fullmatch(r"[\x20-\x7e]*", text):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return b"(" + escaped.encode("ascii") + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def pdf_date(moment: datetime) -> bytes:
    """A PDF date string, as pyHanko writes it."""
    text = moment.strftime("D:%Y%m%d%H%M%S")
    offset = moment.utcoffset()
    if offset is not None:
        seconds = int(offset.total_seconds())
        if seconds == 0:
            text += "Z"
        else:
            sign = "-" if seconds < 0 else "+"
            hours, rest = divmod(abs(seconds), 3600)
            text += f"{sign}{hours:02d}'{rest // 60:02d}'"
    return text_string(text)


@cache
def producer() -> str:
    """The producer pyHanko names in the metadata (the general path's text)."""
    from importlib import metadata

    return f"pyHanko {metadata.version('pyhanko')}"


def eligible(
    opts: PdfDocOptions, *, password: str | None, scheme: str, digest_algorithm: str
) -> bool:
    """Whether the signature asks for nothing beyond what the plain path
    writes: an RSA key and a SHA-2 digest (pyHanko declares extensions for
    EC keys and SHA-3), and options ``options_eligible`` allows."""
    return (
        scheme in ("pkcs1v15", "pss")
        and digest_algorithm in ("sha256", "sha384", "sha512")
        and options_eligible(opts, password)
    )


def options_eligible(opts: PdfDocOptions, password: str | None) -> bool:
    """Whether the options ask for nothing beyond an invisible signature:
    not visible, not certifying, one signature, a plain field name, no
    password (an encrypted document is pyHanko's)."""
    return (
        password is None
        and not opts.visible
        and not opts.certify
        and not opts.then
        and opts.preset is None
        and opts.over_field is None
        and (opts.field is None or re.fullmatch(r"[\x20-\x7e]+", opts.field) is not None)
        and "." not in (opts.field or "")
    )


@dataclass(frozen=True)
class Layout:
    """The signed document in memory, and where its /Contents is reserved."""

    output: bytes
    reserved_start: int
    reserved_end: int

    def document_digest(self, algorithm: str) -> bytes:
        """The digest of the bytes /ByteRange covers."""
        h = hashlib.new(algorithm)
        view = memoryview(self.output)
        h.update(view[: self.reserved_start])
        h.update(view[self.reserved_end :])
        return h.digest()


def _dictionary(entries: list[tuple[bytes, bytes]]) -> bytes:
    return b"<<\n" + b"".join(k + b" " + v + b"\n" for k, v in entries) + b">>"


def _entries(value: Dict, drop: frozenset[str] = frozenset()) -> list[tuple[bytes, bytes]]:
    return [raw for key, raw in value.raw.items() if key not in drop]


def _ref(num: int) -> bytes:
    return b"%d 0 R" % num


def _first_page(doc: Document, catalog: Dict) -> Ref:
    node_ref = catalog.get("Pages")
    for _ in range(_MAX_DEPTH):
        if not isinstance(node_ref, Ref):
            raise NotPlain("page tree node is not an indirect object")
        node = doc.get(node_ref)
        if not isinstance(node, Dict):
            raise NotPlain("page tree node is not a dictionary")
        kind = node.get("Type")
        if kind == "Page":
            return node_ref
        if kind != "Pages":
            raise NotPlain("page tree node of unknown type")
        kids = doc.get(node.get("Kids"))
        if not isinstance(kids, list) or not kids:
            raise NotPlain("page tree without pages")
        node_ref = kids[0]
    raise NotPlain("page tree too deep")


def sign_layout(
    data: bytes,
    opts: PdfDocOptions,
    *,
    now: datetime,
    bytes_reserved: int,
) -> Layout:
    """The original followed by the incremental update of an invisible
    signature with ``bytes_reserved`` hex digits for the CMS; NotPlain when
    the document needs pyHanko."""
    return _write(data, _plan(Document(data), opts, now), bytes_reserved)


@dataclass(frozen=True)
class _Update:
    """The objects of the incremental update, before they are laid out."""

    objects: dict[int, bytes]
    """Each updated or new object but the signature dictionary, by number."""
    signature_num: int
    signature_entries: list[tuple[bytes, bytes]]
    """The signature dictionary's entries after /Contents and /ByteRange."""
    trailer_entries: list[tuple[bytes, bytes]]
    """The trailer's, without /Size and a cross-reference stream's own."""
    last: int
    """The highest object number the update uses."""
    stream_xref: bool
    """A cross-reference stream (else a table), as the last section was."""


def _plan(doc: Document, opts: PdfDocOptions, now: datetime) -> _Update:
    """What the signature adds and changes, or NotPlain."""
    trailer = doc.trailer
    assert trailer is not None  # noqa: S101 - set by the first section read
    if "Encrypt" in trailer:
        raise NotPlain("encrypted")
    root_ref, size = trailer.get("Root"), trailer.get("Size")
    if not isinstance(root_ref, Ref) or not isinstance(size, int) or size < 1:
        raise NotPlain("trailer without an indirect /Root or a /Size")
    if size > MAX_OBJECT_NUMBER:
        raise NotPlain("a /Size past the largest object number")
    if doc.entries and max(doc.entries) >= size:
        raise NotPlain("objects numbered beyond the trailer's /Size")
    catalog = doc.get(root_ref)
    if not isinstance(catalog, Dict) or catalog.get("Type") != "Catalog":
        raise NotPlain("the root is not a catalog")
    for key in ("AcroForm", "Extensions", "Metadata", "Perms"):
        if key in catalog:
            raise NotPlain(f"the catalog has /{key}")
    if doc.header_version >= (2, 0):
        raise NotPlain("PDF 2.0")
    page_ref = _first_page(doc, catalog)
    page = doc.get(page_ref)
    annots = page.get("Annots")
    if annots is not None and not isinstance(annots, list):
        raise NotPlain("the page's /Annots is not a direct array")
    info_ref = trailer.get("Info")
    info = None
    if info_ref is not None:
        info = doc.get(info_ref)
        if not isinstance(info_ref, Ref) or not isinstance(info, Dict):
            raise NotPlain("/Info is not an indirect dictionary")
    if root_ref.gen or page_ref.gen or (isinstance(info_ref, Ref) and info_ref.gen):
        raise NotPlain("an object to update has a non-zero generation")
    id_first = trailer.get("ID")
    if id_first is not None:
        if not isinstance(id_first, list) or len(id_first) != 2:
            raise NotPlain("bad /ID")
        id_first = id_first[0]
        if not isinstance(id_first, String):
            raise NotPlain("bad /ID")
    else:
        id_first = os.urandom(16)

    # New objects are numbered as pyHanko numbers them: from /Size + 1.
    form_num, field_num, sig_num = size + 1, size + 2, size + 3
    info_num = info_ref.num if isinstance(info_ref, Ref) else size + 4

    catalog_entries = _entries(catalog)
    version = doc.header_version
    declared = catalog.get("Version")
    if isinstance(declared, Name) and re.fullmatch(r"\d\.\d", declared):
        version = max(version, (int(declared[0]), int(declared[2])))
    if version < (1, 7):
        # pyHanko's writer declares PDF 1.7 when neither says as much
        catalog_entries = [*_entries(catalog, frozenset({"Version"})), (b"/Version", b"/1.7")]
    catalog_entries += [(b"/AcroForm", _ref(form_num)), (b"/Extensions", _ESIC)]

    page_entries = _entries(page, frozenset({"Annots"}))
    if annots is None:
        page_entries.append((b"/Annots", b"[ " + _ref(field_num) + b" ]"))
    else:
        annots_key, annots_raw = page.raw["Annots"]
        page_entries.append((annots_key, annots_raw[:-1].rstrip() + b" " + _ref(field_num) + b" ]"))

    signature_entries: list[tuple[bytes, bytes]] = [
        (b"/Type", b"/Sig"),
        (b"/Filter", b"/Adobe.PPKLite"),
        (b"/SubFilter", b"/ETSI.CAdES.detached"),
        (b"/M", pdf_date(now)),
    ]
    for entry, text in (
        (b"/Name", opts.name),
        (b"/Location", opts.location),
        (b"/Reason", opts.reason),
        (b"/ContactInfo", opts.contact),
    ):
        if text:
            signature_entries.append((entry, text_string(text)))

    named = producer()
    info_entries = _entries(info, frozenset({"ModDate", "Producer"})) if info else []
    if info is not None and "Producer" in info:
        existing = _text(info["Producer"])
        if named not in existing:
            named = f"{existing}; {named}"
    modified = datetime.now(UTC).astimezone()
    info_entries += [(b"/ModDate", pdf_date(modified)), (b"/Producer", text_string(named))]

    id_entry = b"[ <" + id_first.hex().encode() + b"> <" + os.urandom(16).hex().encode() + b"> ]"
    trailer_entries = [
        *_entries(trailer, _MANAGED_TRAILER),
        (b"/Root", _ref(root_ref.num)),
        (b"/Info", _ref(info_num)),
        (b"/ID", id_entry),
        (b"/Prev", b"%d" % doc.startxref),
    ]
    objects = {
        root_ref.num: _dictionary(catalog_entries),
        page_ref.num: _dictionary(page_entries),
        form_num: _dictionary(
            [(b"/Fields", b"[ " + _ref(field_num) + b" ]"), (b"/SigFlags", b"3")]
        ),
        field_num: _dictionary(
            [
                (b"/FT", b"/Sig"),
                (b"/T", text_string(opts.field or "Signature1")),
                (b"/Type", b"/Annot"),
                (b"/Subtype", b"/Widget"),
                (b"/F", b"132"),
                (b"/Rect", b"[ 0 0 0 0 ]"),
                (b"/P", _ref(page_ref.num)),
                (b"/V", _ref(sig_num)),
            ]
        ),
        info_num: _dictionary(info_entries),
    }
    return _Update(
        objects=objects,
        signature_num=sig_num,
        signature_entries=signature_entries,
        trailer_entries=trailer_entries,
        last=max(sig_num, info_num),
        stream_xref=doc.stream_xref,
    )


def _write(data: bytes, update: _Update, bytes_reserved: int) -> Layout:
    """``data`` followed by ``update``: its objects in number order (the
    signature dictionary with /Contents reserved), the cross-reference data,
    and /ByteRange filled in last."""
    out = bytearray(data)
    if not data.endswith((b"\n", b"\r")):
        out += b"\n"
    offsets: dict[int, int] = {}
    reserved_start = reserved_end = byte_range_at = 0
    for num in sorted([*update.objects, update.signature_num]):
        offsets[num] = len(out)
        if num != update.signature_num:
            out.extend(b"%d 0 obj\n" % num + update.objects[num] + b"\nendobj\n")
            continue
        out.extend(b"%d 0 obj\n<<\n/Contents " % num)
        reserved_start = len(out)
        out.extend(b"<" + b"0" * bytes_reserved + b">")
        reserved_end = len(out)
        out.extend(b"\n/ByteRange ")
        byte_range_at = len(out)
        out.extend(b" " * _BYTE_RANGE_WIDTH)
        out.extend(b"\n" + b"".join(k + b" " + v + b"\n" for k, v in update.signature_entries))
        out.extend(b">>\nendobj\n")
    xref_at = len(out)
    if update.stream_xref:
        out.extend(_xref_stream(update, offsets, xref_at))
    else:
        out.extend(_xref_table(update, offsets))
    out.extend(b"startxref\n%d\n%%%%EOF\n" % xref_at)
    byte_range = b"[0 %d %d %d]" % (reserved_start, reserved_end, len(out) - reserved_end)
    out[byte_range_at : byte_range_at + len(byte_range)] = byte_range
    return Layout(bytes(out), reserved_start, reserved_end)


def _xref_stream(update: _Update, offsets: dict[int, int], at: int) -> bytes:
    """A cross-reference stream for ``offsets`` and itself (written at ``at``)."""
    xref_num = update.last + 1
    offsets = {**offsets, xref_num: at}
    numbers = [0, *sorted(offsets)]
    width = max(4, (max(offsets.values()).bit_length() + 7) // 8)
    rows = b"".join(
        (b"\x00" + bytes(width) + b"\xff\xff")
        if num == 0
        else (b"\x01" + offsets[num].to_bytes(width, "big") + b"\x00\x00")
        for num in numbers
    )
    packed = zlib.compress(rows)
    entries = [
        *update.trailer_entries,
        (b"/Type", b"/XRef"),
        (b"/Size", b"%d" % (xref_num + 1)),
        (b"/W", b"[ 1 %d 2 ]" % width),
        (b"/Index", b"[ " + b" ".join(b"%d %d" % run for run in _runs(numbers)) + b" ]"),
        (b"/Filter", b"/FlateDecode"),
        (b"/Length", b"%d" % len(packed)),
    ]
    return (
        b"%d 0 obj\n" % xref_num
        + _dictionary(entries)
        + b"\nstream\n"
        + packed
        + b"\nendstream\nendobj\n"
    )


def _xref_table(update: _Update, offsets: dict[int, int]) -> bytes:
    """A cross-reference table for ``offsets``, and the trailer."""
    out = bytearray(b"xref\n")
    for first, count in _runs([0, *sorted(offsets)]):
        out.extend(b"%d %d\n" % (first, count))
        for num in range(first, first + count):
            out.extend(b"0000000000 65535 f \n" if num == 0 else b"%010d 00000 n \n" % offsets[num])
    entries = [*update.trailer_entries, (b"/Size", b"%d" % (update.last + 1))]
    return bytes(out + b"trailer\n" + _dictionary(entries) + b"\n")


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted object numbers, as (first, count)."""
    runs: list[list[int]] = []
    for num in numbers:
        if runs and runs[-1][0] + runs[-1][1] == num:
            runs[-1][1] += 1
        else:
            runs.append([num, 1])
    return [(first, count) for first, count in runs]
