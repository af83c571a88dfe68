"""A CMS SignedData file read and written without its content in memory.

An attached signature (.p7m) holds the whole signed file; a 2 GiB document
must not become a 2 GiB Python object. The reader walks the ASN.1 headers
down to ``encapContentInfo.eContent`` and notes where the content lies (one
range for DER, several for a BER constructed OCTET STRING as ``openssl cms
-stream`` writes); everything else (certificates, CRLs, signer infos: a few
kilobytes) is read as raw bytes, BER or DER, exactly as stored, so that
whatever a signature or an archive time-stamp covers is never re-encoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from signkit.errors import InputFormatError

OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
OID_DATA = bytes.fromhex("06092a864886f70d010701")

CHUNK = 1 << 20
# Everything but the content: certificates, CRLs, OCSP responses, signer infos.
MAX_STRUCTURE = 64 << 20

_PEM_BEGIN = b"-----BEGIN "


def length_octets(n: int) -> bytes:
    """The DER length octets of ``n``."""
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, body: bytes) -> bytes:
    """One DER element."""
    return bytes([tag]) + length_octets(len(body)) + body


def header(tag: int, length: int) -> bytes:
    """The tag and length octets of an element whose body is written separately."""
    return bytes([tag]) + length_octets(length)


class _Source:
    """Random access to the signature's DER bytes: a file, or a buffer (PEM decoded)."""

    def __init__(self, fh: IO[bytes], size: int, name: str) -> None:
        self.fh = fh
        self.size = size
        self.name = name

    def read(self, offset: int, n: int) -> bytes:
        if offset + n > self.size:
            raise InputFormatError("truncated CMS structure", subject=self.name)
        self.fh.seek(offset)
        data = self.fh.read(n)
        if len(data) != n:
            raise InputFormatError("truncated CMS structure", subject=self.name)
        return data


@dataclass(frozen=True)
class _Head:
    tag: int
    start: int
    body: int
    """Offset of the first body byte."""
    length: int | None
    """None: indefinite (BER), ends with 00 00."""


def _head(src: _Source, offset: int) -> _Head:
    first = src.read(offset, 2)
    tag = first[0]
    if tag & 0x1F == 0x1F:
        raise InputFormatError("unexpected multi-byte ASN.1 tag", subject=src.name)
    n = first[1]
    if n < 0x80:
        return _Head(tag, offset, offset + 2, n)
    if n == 0x80:
        if not tag & 0x20:
            raise InputFormatError("indefinite length on a primitive element", subject=src.name)
        return _Head(tag, offset, offset + 2, None)
    count = n & 0x7F
    if count > 8:
        raise InputFormatError("ASN.1 length too large", subject=src.name)
    length = int.from_bytes(src.read(offset + 2, count), "big")
    return _Head(tag, offset, offset + 2 + count, length)


def _end(src: _Source, h: _Head, depth: int = 0) -> int:
    """Offset just after the element ``h`` (walks children of an indefinite one)."""
    if h.length is not None:
        end = h.body + h.length
        if end > src.size:
            raise InputFormatError("truncated CMS structure", subject=src.name)
        return end
    if depth > 64:
        raise InputFormatError("ASN.1 nesting too deep", subject=src.name)
    pos = h.body
    while True:
        if src.read(pos, 2) == b"\x00\x00":
            return pos + 2
        pos = _end(src, _head(src, pos), depth + 1)


def _children(src: _Source, h: _Head) -> Iterator[_Head]:
    pos = h.body
    stop = None if h.length is None else h.body + h.length
    while True:
        if stop is not None and pos >= stop:
            return
        if stop is None and src.read(pos, 2) == b"\x00\x00":
            return
        child = _head(src, pos)
        yield child
        pos = _end(src, child)


@dataclass
class SignedDataParts:
    """A SignedData's elements as stored (raw TLV bytes), and where its content lies."""

    version: bytes
    digest_algorithms: bytes
    content_type: bytes
    """encapContentInfo.eContentType (the OID's TLV)."""
    certificates: list[bytes] = field(default_factory=list)
    """Each CertificateChoices TLV of SignedData.certificates, in order."""
    crls: list[bytes] = field(default_factory=list)
    """Each RevocationInfoChoice TLV of SignedData.crls, in order."""
    signer_infos: list[bytes] = field(default_factory=list)
    """Each SignerInfo TLV."""
    content: list[tuple[int, int]] | None = None
    """(offset, length) ranges of the attached content in the file; None: detached."""
    certificates_present: bool = False
    crls_present: bool = False

    def content_length(self) -> int:
        """Bytes of attached content."""
        return sum(n for _o, n in self.content or ())

    def detached_der(self) -> bytes:
        """The SignedData as DER without its content (what a verifier parses)."""
        return tlv(0x30, self.body_without_content())

    def body_without_content(self) -> bytes:
        parts = [self.version, self.digest_algorithms, tlv(0x30, self.content_type)]
        parts += self._tail()
        return b"".join(parts)

    def _tail(self) -> list[bytes]:
        out = []
        if self.certificates or self.certificates_present:
            out.append(tlv(0xA0, b"".join(self.certificates)))
        if self.crls or self.crls_present:
            out.append(tlv(0xA1, b"".join(self.crls)))
        out.append(tlv(0x31, b"".join(self.signer_infos)))
        return out

    def write(self, out: IO[bytes], fh: IO[bytes] | None, *, content_sha: str | None) -> None:
        """Write ContentInfo(SignedData) as DER to ``out``; an attached content is
        copied from ``fh`` (the file it was read from, or the input for a new
        signature) and, given ``content_sha``, must still hash to it."""
        encap_body_len = len(self.content_type)
        n = self.content_length() if self.content is not None else 0
        if self.content is not None:
            octets = len(header(0x04, n)) + n
            encap_body_len += len(header(0xA0, octets)) + octets
        encap_len = len(header(0x30, encap_body_len)) + encap_body_len
        tail = self._tail()
        sd_body = len(self.version) + len(self.digest_algorithms) + encap_len
        sd_body += sum(len(t) for t in tail)
        sd = len(header(0x30, sd_body)) + sd_body
        ci_body = len(OID_SIGNED_DATA) + len(header(0xA0, sd)) + sd
        out.write(header(0x30, ci_body) + OID_SIGNED_DATA + header(0xA0, sd))
        out.write(header(0x30, sd_body) + self.version + self.digest_algorithms)
        out.write(header(0x30, encap_body_len) + self.content_type)
        if self.content is not None:
            assert fh is not None  # noqa: S101 - attached content has a source
            out.write(header(0xA0, len(header(0x04, n)) + n) + header(0x04, n))
            h = hashlib.sha256()
            for offset, length in self.content:
                fh.seek(offset)
                remaining = length
                while remaining:
                    chunk = fh.read(min(CHUNK, remaining))
                    if not chunk:
                        raise InputFormatError("the signed content ended early")
                    h.update(chunk)
                    out.write(chunk)
                    remaining -= len(chunk)
            if content_sha is not None and h.hexdigest() != content_sha:
                raise InputFormatError("the content changed while it was being signed")
        for t in tail:
            out.write(t)


def read_signed_data(fh: IO[bytes], size: int, name: str) -> SignedDataParts:
    """The parts of the ContentInfo(SignedData) DER/BER in ``fh`` (``size`` bytes)."""
    src = _Source(fh, size, name)
    try:
        return _read(src)
    except InputFormatError:
        raise
    except (IndexError, ValueError) as exc:
        raise InputFormatError(f"malformed CMS structure ({exc})", subject=name) from None


def _raw(src: _Source, h: _Head) -> bytes:
    end = _end(src, h)
    if end - h.start > MAX_STRUCTURE:
        raise InputFormatError("CMS structure too large", subject=src.name)
    return src.read(h.start, end - h.start)


def _read(src: _Source) -> SignedDataParts:
    top = _head(src, 0)
    if top.tag != 0x30:
        raise InputFormatError("not a CMS signature (no ContentInfo)", subject=src.name)
    kids = _children(src, top)
    oid = next(kids, None)
    if oid is None or _raw(src, oid) != OID_SIGNED_DATA:
        raise InputFormatError("not a CMS SignedData", subject=src.name)
    wrapper = next(kids, None)
    if wrapper is None or wrapper.tag != 0xA0:
        raise InputFormatError("CMS SignedData without content", subject=src.name)
    sd = next(_children(src, wrapper), None)
    if sd is None or sd.tag != 0x30:
        raise InputFormatError("malformed CMS SignedData", subject=src.name)
    elements = list(_children(src, sd))
    if len(elements) < 4 or elements[0].tag != 0x02 or elements[1].tag != 0x31:
        raise InputFormatError("malformed CMS SignedData", subject=src.name)
    encap = elements[2]
    encap_kids = list(_children(src, encap))
    if not encap_kids or encap_kids[0].tag != 0x06:
        raise InputFormatError("malformed encapContentInfo", subject=src.name)
    parts = SignedDataParts(
        version=_raw(src, elements[0]),
        digest_algorithms=_raw(src, elements[1]),
        content_type=_raw(src, encap_kids[0]),
    )
    if len(encap_kids) > 1:
        explicit = encap_kids[1]
        octets = next(_children(src, explicit), None)
        if explicit.tag != 0xA0 or octets is None:
            raise InputFormatError("malformed eContent", subject=src.name)
        parts.content = _content_ranges(src, octets, 0)
    for element in elements[3:]:
        if element.tag == 0xA0:
            parts.certificates = [_raw(src, c) for c in _children(src, element)]
            parts.certificates_present = True
        elif element.tag == 0xA1:
            parts.crls = [_raw(src, c) for c in _children(src, element)]
            parts.crls_present = True
        elif element.tag == 0x31:
            parts.signer_infos = [_raw(src, s) for s in _children(src, element)]
        else:
            raise InputFormatError("unexpected element in SignedData", subject=src.name)
    if not parts.signer_infos:
        raise InputFormatError("CMS SignedData without a signer", subject=src.name)
    return parts


def _content_ranges(src: _Source, h: _Head, depth: int) -> list[tuple[int, int]]:
    if h.tag == 0x04:
        assert h.length is not None  # noqa: S101 - primitive elements have a length
        if h.body + h.length > src.size:
            raise InputFormatError("truncated CMS content", subject=src.name)
        return [(h.body, h.length)]
    if h.tag != 0x24 or depth > 16:
        raise InputFormatError("eContent is not an OCTET STRING", subject=src.name)
    ranges: list[tuple[int, int]] = []
    for child in _children(src, h):
        ranges += _content_ranges(src, child, depth + 1)
    return ranges


def open_signature(path: str) -> tuple[IO[bytes], int, bool]:
    """The signature's DER as a seekable file: the file itself, or for PEM its
    decoded bytes in a temporary file (a PEM .p7m may be as large as its
    content). Returns (file, size, was_pem); the caller closes the file."""
    import tempfile

    from signkit.fsio import open_regular

    fh = os.fdopen(open_regular(path), "rb")
    head = fh.read(64)
    fh.seek(0)
    stripped = head.lstrip()
    if not stripped.startswith(_PEM_BEGIN):
        return fh, os.fstat(fh.fileno()).st_size, False
    with fh:
        spool = tempfile.TemporaryFile()
        try:
            _unpem(fh, spool, path)
        except BaseException:
            spool.close()
            raise
        size = spool.tell()
        spool.seek(0)
        return spool, size, True


def signature_buffer(data: bytes, name: str) -> tuple[IO[bytes], int, bool]:
    """``open_signature`` for a signature already in memory (an attachment)."""
    import io

    if not data[:64].lstrip().startswith(_PEM_BEGIN):
        return io.BytesIO(data), len(data), False
    out = io.BytesIO()
    _unpem(io.BytesIO(data), out, name)
    size = out.tell()
    out.seek(0)
    return out, size, True


def _unpem(lines: IO[bytes], out: IO[bytes], name: str) -> None:
    """Decode the first PEM block of ``lines`` into ``out``, a line at a time."""
    begun = False
    carry = b""
    for line in lines:
        text = line.strip()
        if text.startswith(b"-----BEGIN"):
            begun = True
            continue
        if text.startswith(b"-----END"):
            break
        if begun and text:
            carry += text
            usable = len(carry) - len(carry) % 4
            try:
                out.write(base64.b64decode(carry[:usable], validate=True))
            except (binascii.Error, ValueError):
                raise InputFormatError("malformed PEM", subject=name) from None
            carry = carry[usable:]
    if carry:
        raise InputFormatError("malformed PEM", subject=name)


def pem_lines(data: IO[bytes], out: IO[bytes], label: str = "CMS") -> None:
    """Write the DER in ``data`` (from its start) as PEM, in bounded chunks."""
    out.write(f"-----BEGIN {label}-----\n".encode("ascii"))
    data.seek(0)
    while chunk := data.read(48 * 16384):  # whole 64-character lines
        encoded = base64.b64encode(chunk)
        for i in range(0, len(encoded), 64):
            out.write(encoded[i : i + 64] + b"\n")
    out.write(f"-----END {label}-----\n".encode("ascii"))


def children_of(raw: bytes, name: str = "CMS element") -> list[bytes]:
    """The raw TLVs of the children of one constructed element."""
    import io

    src = _Source(io.BytesIO(raw), len(raw), name)
    try:
        return [_raw(src, c) for c in _children(src, _head(src, 0))]
    except (IndexError, ValueError) as exc:
        raise InputFormatError(f"malformed CMS structure ({exc})", subject=name) from None


def body_of(raw: bytes, name: str = "CMS element") -> bytes:
    """The body (value octets) of one definite-length element, or the
    concatenated children of an indefinite one."""
    return b"".join(children_of(raw, name)) if raw[1:2] == b"\x80" else _definite_body(raw)


def _definite_body(raw: bytes) -> bytes:
    n = raw[1]
    if n < 0x80:
        return raw[2 : 2 + n]
    count = n & 0x7F
    length = int.from_bytes(raw[2 : 2 + count], "big")
    return raw[2 + count : 2 + count + length]
