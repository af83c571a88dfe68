"""edXML packages of the document interconnection axis (QCVN 102:2016/BTTTT).

The layout followed is the one of the SDK sample ``edoc_new.edxml`` and the
vendors' builders (README: edXML packages)::

    edXML                                  (default namespace QCVN_102_2016)
      edXML:edXMLEnvelope
        edXML:edXMLHeader
          edXML:MessageHeader              From, To, Code, PromulgationInfo, ...
          edXML:TraceHeaderList
          ds:Signature                     the sender's, over the whole document
        edXML:edXMLBody
          edXML:edXMLManifest
            edXML:Reference                ContentId, AttachmentName, ContentType
      AttachmentEncoded                    (outside the envelope)
        Attachment                         ContentId, AttachmentName, ContentType,
                                           edXML:ContentTransferEncoded (base64)

Elements are matched by local name under the edXML namespace or none (the
samples mix a default namespace with unprefixed children of
``AttachmentEncoded``). The document is read by the one XML parser, under
its limits; attachments are decoded one at a time, bounded in count and
decoded size, and written nowhere unless ``extract_attachments`` is asked to.
"""

from __future__ import annotations

import binascii
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from signkit.errors import InputFormatError, OutputError

if TYPE_CHECKING:
    from lxml.etree import _Element

    from signkit.formats.xml.parse import XmlDocument

EDXML_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
MAX_ATTACHMENTS = 100
"""Most attachments a package may carry."""
MAX_ATTACHMENT_BYTES = 32 << 20
"""Largest decoded attachment (the parser's own text-node limit is lower still)."""
MAX_TOTAL_BYTES = 64 << 20
"""Largest sum of decoded attachments of one package."""
_ATTACHMENT_LISTS = ("AttachmentEncoded", "Attachments")
_NAMESPACES = (EDXML_NS, None)


def looks_like_edxml(head: bytes) -> bool:
    """Whether the first bytes of a file announce an edXML package (a hint only:
    ``read_package`` decides)."""
    return b"<edXML" in head or b":edXML " in head or b":edXML>" in head


def _local(el: _Element) -> str:
    return str(el.tag).rpartition("}")[2]


def _namespace(el: _Element) -> str | None:
    ns = str(el.tag).rpartition("}")[0].lstrip("{")
    return ns or None


def _children(el: _Element, name: str) -> list[_Element]:
    return [
        c
        for c in el
        if isinstance(c.tag, str) and _local(c) == name and _namespace(c) in _NAMESPACES
    ]


def _one(el: _Element, name: str, source: str, where: str) -> _Element:
    found = _children(el, name)
    path = f"{where}/{name}"
    if not found:
        raise InputFormatError(f"not an edXML envelope: no {path}", subject=source)
    if len(found) > 1:
        count = len(found)
        raise InputFormatError(
            f"{count} {path} elements: refusing an ambiguous envelope", subject=source
        )
    return found[0]


def _text(el: _Element | None, *path: str) -> str:
    node = el
    for name in path:
        if node is None:
            return ""
        found = _children(node, name)
        node = found[0] if found else None
    return " ".join((node.text or "").split()) if node is not None else ""


@dataclass(frozen=True, kw_only=True)
class HeaderFacts:
    """What the MessageHeader claims about the document."""

    organ_id: str = ""
    """From/OrganId: the sender's code."""
    organ_name: str = ""
    """From/OrganName."""
    code_number: str = ""
    """Code/CodeNumber: the number of the document (12)."""
    code_notation: str = ""
    """Code/CodeNotation: its notation (QĐ-UBND)."""
    place: str = ""
    """PromulgationInfo/Place."""
    promulgation_date: str = ""
    """PromulgationInfo/PromulgationDate."""
    subject: str = ""
    """Subject."""
    signer: str = ""
    """SignerInfo/FullName."""

    @property
    def code(self) -> str:
        """Number and notation as written on the document (12/QĐ-UBND)."""
        return "/".join(p for p in (self.code_number, self.code_notation) if p)

    def summary(self) -> str:
        """One line for a clerk: code, promulgation, sender ('-' for what is missing)."""
        promulgation = ", ".join(p for p in (self.place, self.promulgation_date) if p)
        sender = (self.organ_name + (f" ({self.organ_id})" if self.organ_id else "")).strip()
        return (
            f"edXML header: Code {self.code or '-'}, PromulgationInfo {promulgation or '-'}, "
            f"From {sender or '-'}"
        )


@dataclass(frozen=True, kw_only=True)
class ManifestEntry:
    """One edXMLManifest/Reference."""

    content_id: str
    """ContentId (without a cid: prefix)."""
    name: str
    """AttachmentName."""
    content_type: str
    """ContentType."""


@dataclass(frozen=True, kw_only=True)
class Attachment:
    """One AttachmentEncoded/Attachment, not yet decoded."""

    index: int
    """Position in the package (0 = first)."""
    content_id: str
    """ContentId (without a cid: prefix)."""
    name: str
    """AttachmentName as the package gives it."""
    content_type: str
    """ContentType."""
    encoded: _Element | None
    """The ContentTransferEncoded element (None: missing)."""

    @property
    def label(self) -> str:
        """The name a clerk reads (the content id when the name is missing)."""
        return self.name or self.content_id or f"attachment {self.index + 1}"


@dataclass(kw_only=True)
class Package:
    """An edXML package as read: header facts, manifest, attachments, signatures."""

    doc: XmlDocument
    """The parsed document."""
    header: HeaderFacts
    """The MessageHeader's claims."""
    header_element: _Element
    """edXMLEnvelope/edXMLHeader."""
    manifest: list[ManifestEntry] = field(default_factory=list)
    """edXMLManifest references, in order."""
    attachments: list[Attachment] = field(default_factory=list)
    """Attachments, in order."""


def _cid(value: str) -> str:
    value = value.strip()
    return value[4:] if value.lower().startswith("cid:") else value


def read_package(doc: XmlDocument) -> Package:
    """The package ``doc`` holds; InputFormatError when it is not an edXML envelope."""
    root = doc.root
    source = doc.source
    name = _local(root)
    if name != "edXML":
        raise InputFormatError(
            f"not an edXML envelope: the root element is {name}, not edXML", subject=source
        )
    namespace = _namespace(root) or "(none)"
    if namespace != EDXML_NS:
        raise InputFormatError(
            f"not an edXML envelope: the root element is in the namespace {namespace}, "
            f"not {EDXML_NS}",
            subject=source,
        )
    envelope = _one(root, "edXMLEnvelope", source, "edXML")
    header = _one(envelope, "edXMLHeader", source, "edXMLEnvelope")
    body = _one(envelope, "edXMLBody", source, "edXMLEnvelope")
    message = _one(header, "MessageHeader", source, "edXMLHeader")
    facts = HeaderFacts(
        organ_id=_text(message, "From", "OrganId"),
        organ_name=_text(message, "From", "OrganName"),
        code_number=_text(message, "Code", "CodeNumber"),
        code_notation=_text(message, "Code", "CodeNotation"),
        place=_text(message, "PromulgationInfo", "Place"),
        promulgation_date=_text(message, "PromulgationInfo", "PromulgationDate"),
        subject=_text(message, "Subject"),
        signer=_text(message, "SignerInfo", "FullName"),
    )
    manifest = [
        ManifestEntry(
            content_id=_cid(_text(ref, "ContentId")),
            name=_text(ref, "AttachmentName"),
            content_type=_text(ref, "ContentType"),
        )
        for m in _children(body, "edXMLManifest")
        for ref in _children(m, "Reference")
    ]
    items = [a for lst in _ATTACHMENT_LISTS for w in _children(root, lst) for a in w]
    attachments: list[Attachment] = []
    for el in items:
        if not isinstance(el.tag, str) or _local(el) != "Attachment":
            continue
        if len(attachments) >= MAX_ATTACHMENTS:
            count = MAX_ATTACHMENTS
            raise InputFormatError(
                f"more than {count} attachments: refusing the package", subject=source
            )
        encoded = _children(el, "ContentTransferEncoded")
        attachments.append(
            Attachment(
                index=len(attachments),
                content_id=_cid(_text(el, "ContentId")),
                name=_text(el, "AttachmentName"),
                content_type=_text(el, "ContentType"),
                encoded=encoded[0] if len(encoded) == 1 else None,
            )
        )
    return Package(
        doc=doc, header=facts, header_element=header, manifest=manifest, attachments=attachments
    )


def manifest_problems(package: Package) -> list[str]:
    """Where the manifest and the attachments disagree (names, count, content ids),
    and names a clerk could not tell apart."""
    problems: list[str] = []
    names = [a.name for a in package.attachments]
    seen: set[str] = set()
    for name in names:
        key = unicodedata.normalize("NFC", name).casefold()
        if key in seen:
            problems.append(f"two attachments are named {name}")
        seen.add(key)
    if not package.manifest:
        problems.append("the edXMLManifest lists no attachment")
        return problems
    if len(package.manifest) != len(package.attachments):
        problems.append(
            f"the edXMLManifest lists {len(package.manifest)} attachment(s), "
            f"the package carries {len(package.attachments)}"
        )
    listed = {(m.content_id, m.name) for m in package.manifest}
    carried = {(a.content_id, a.name) for a in package.attachments}
    for cid, name in sorted(carried - listed):
        problems.append(f"attachment {name or cid} is not in the edXMLManifest")
    for cid, name in sorted(listed - carried):
        problems.append(f"the edXMLManifest lists {name or cid}, which the package does not carry")
    return problems


class Budget:
    """Decoded bytes left for the attachments of one package."""

    def __init__(self, total: int = MAX_TOTAL_BYTES) -> None:
        self.left = total

    def take(self, size: int, attachment: Attachment, source: str) -> None:
        name = attachment.label
        if size > MAX_ATTACHMENT_BYTES:
            mib = MAX_ATTACHMENT_BYTES >> 20
            raise InputFormatError(
                f"attachment {name} decodes to more than {mib} MiB", subject=source
            )
        if size > self.left:
            mib = MAX_TOTAL_BYTES >> 20
            raise InputFormatError(
                f"the attachments decode to more than {mib} MiB in all", subject=source
            )
        self.left -= size


_NOT_B64 = re.compile(r"[^A-Za-z0-9+/=]")
_SPACE = re.compile(r"\s+")
# Characters of base64 text decoded at a time.
DECODE_CHUNK = 1 << 18


def decode(attachment: Attachment, budget: Budget, source: str) -> bytes:
    """The attachment's bytes (strict base64), within the package's budget,
    decoded a chunk at a time into one buffer: beside the text, no second copy
    of it is made."""
    name = attachment.label
    if attachment.encoded is None:
        raise InputFormatError(
            f"attachment {name} has no (or more than one) ContentTransferEncoded",
            subject=source,
        )
    text = attachment.encoded.text or ""
    # The size is known before anything is decoded: 3 bytes per 4 characters
    # at most (whitespace only makes it less).
    limit = len(text) * 3 // 4
    budget.take(limit, attachment, source)
    out = bytearray(limit)
    pos = 0
    carry = chunk = ""
    ended = False
    for start in range(0, len(text), DECODE_CHUNK):
        chunk = carry + _SPACE.sub("", text[start : start + DECODE_CHUNK])
        if _NOT_B64.search(chunk) or (ended and chunk):
            raise InputFormatError(f"attachment {name} is not base64", subject=source)
        usable = len(chunk) - len(chunk) % 4
        carry = chunk[usable:]
        if not usable:
            continue
        try:
            piece = binascii.a2b_base64(chunk[:usable], strict_mode=True)
        except binascii.Error:
            raise InputFormatError(f"attachment {name} is not base64", subject=source) from None
        out[pos : pos + len(piece)] = piece
        pos += len(piece)
        # Padding ends the data: anything after it is not base64.
        ended = chunk[usable - 1] == "="
    if carry:
        raise InputFormatError(f"attachment {name} is not base64", subject=source)
    del text, chunk  # the only reference to the text: freed before the copy below
    del out[pos:]
    return bytes(out)


def decoded(
    package: Package, budget: Budget | None = None
) -> Iterator[tuple[Attachment, bytes | InputFormatError]]:
    """Each attachment with its bytes, or the reason it cannot be decoded; one at a
    time, so no more than one is held beside the document."""
    budget = budget or Budget()
    for attachment in package.attachments:
        try:
            yield attachment, decode(attachment, budget, package.doc.source)
        except InputFormatError as exc:
            yield attachment, exc


_UNSAFE = re.compile(r"[^\w.\- ()+,]", re.UNICODE)


def safe_name(name: str, index: int) -> str:
    """A file name that stays inside the directory it is written to: no
    separators, no '..', no control characters, no leading dot, at most 120
    characters; ``attachment-N`` when nothing usable is left."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    if len(base) > 120:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 120 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:120]
    return base or f"attachment-{index + 1}"


def extract_attachments(package: Package, directory: Path) -> list[Path]:
    """Write every attachment into ``directory`` (created if missing) under a
    sanitised name; refuses names that collide (after sanitising, ignoring case)
    and files that exist, before anything is written."""
    from signkit.fsio import atomic_write

    source = package.doc.source
    names = [safe_name(a.name, a.index) for a in package.attachments]
    folded = [n.casefold() for n in names]
    for i, key in enumerate(folded):
        if folded.index(key) != i:
            name = names[i]
            raise OutputError(
                f"two attachments would be written as {name}: refusing to extract",
                subject=source,
            )
    targets = [directory / n for n in names]
    for target in targets:
        if os.path.lexists(target):
            raise OutputError("exists; not overwritten", subject=str(target))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OutputError(f"cannot write ({reason})", subject=str(directory)) from None
    written: list[Path] = []
    for (_attachment, data), target in zip(decoded(package), targets, strict=True):
        if isinstance(data, InputFormatError):
            raise data
        try:
            atomic_write(target, data)
        except OSError as exc:
            raise OutputError(
                f"cannot write ({exc.strerror or exc})", subject=str(target)
            ) from None
        written.append(target)
    return written


def extract_package(path: Path, directory: Path) -> list[Path]:
    """Write the attachments of the package at ``path`` into
    ``directory/<package name>/`` (see ``extract_attachments``)."""
    from signkit.errors import InputError
    from signkit.formats.xml.parse import MAX_BYTES, parse
    from signkit.fsio import read_within

    try:
        with path.open("rb") as fh:
            data = read_within(fh, MAX_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    package = read_package(parse(data, str(path)))
    return extract_attachments(package, directory / safe_name(path.stem, 0))
