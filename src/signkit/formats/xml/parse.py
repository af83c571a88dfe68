"""The one XML parser of signkit: signing, its self-check and ``verify`` read
documents through ``parse`` and nothing else, under one set of limits.

Refused before the parser sees anything: documents over ``MAX_BYTES``, a
DOCTYPE that names an external DTD, and an internal DTD subset that declares
anything but elements and attribute lists (no ENTITY, no parameter-entity
reference: no expansion, no external resource). An internal subset of
ATTLIST/ELEMENT declarations, common in interoperability files, is accepted
and its ID-typed attributes are honoured. The parser loads nothing and
touches no network. libxml2's depth limit stays on; its 10 MB text-node
limit is lifted only for a document without any DTD (base64 content such as
an edXML attachment), where the size cap already bounds every node.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signkit.errors import InputFormatError
from signkit.texts import shorten

if TYPE_CHECKING:
    from lxml.etree import XMLParser, XPath, _Element, _ElementTree

MAX_BYTES = 64 << 20
"""Largest document accepted (the whole document is held in memory)."""
MAX_DEPTH = 256
"""Deepest element nesting accepted (libxml2's own limit without XML_PARSE_HUGE)."""
MAX_ATTRIBUTES = 4096
"""Most attributes on one element (libxml2 canonicalises an element's
attributes in quadratic time: 100,000 took minutes)."""
_ATTRIBUTES_CHECKED_FROM = 64 << 10
"""Smaller documents cannot hold more than MAX_ATTRIBUTES on an element."""

XML_NS = "http://www.w3.org/XML/1998/namespace"
_OTHER_ENCODINGS = {
    b"\x00\x00\x00<": "UTF-32 without a byte order mark",
    b"<\x00\x00\x00": "UTF-32 without a byte order mark",
    b"\x00<\x00?": "UTF-16 without a byte order mark",
    b"<\x00?\x00": "UTF-16 without a byte order mark",
    b"\x4c\x6f\xa7\x94": "EBCDIC",
}
_BOM = b"\xef\xbb\xbf"
_DECL = re.compile(rb"<\?xml\s[^>]*?\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_DOCTYPE_HEAD = re.compile(rb"<!DOCTYPE\s+([^\s\[>]+)\s*")
# One token of an ELEMENT/ATTLIST declaration: a quoted value, a group, a name or '>'.
_DECL_TOKEN = re.compile(rb"""\s*("[^"]*"|'[^']*'|\([^)]*\)|>|[^\s>"'(]+)""")


def _new_parser(*, dtd_attributes: bool, huge: bool = False) -> XMLParser:
    from lxml import etree

    # No external DTD, no entity expansion, no network; libxml2's size and
    # depth limits kept (no huge_tree). Attribute defaults of an accepted
    # internal subset are part of the document (C14N 1.0 §1.1). xmlsec1 does
    # not apply them, so signing refuses a document whose DTD gives any.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=dtd_attributes,
        huge_tree=huge,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=False,
        collect_ids=False,
    )


@functools.cache
def _parser(dtd_attributes: bool, huge: bool = False) -> XMLParser:
    # One per process and kind: lxml parsers are reused, never shared across threads.
    return _new_parser(dtd_attributes=dtd_attributes, huge=huge)


def _depth_over(root: _Element, limit: int) -> bool:
    """Whether elements nest deeper than ``limit`` below ``root``."""
    from lxml import etree

    depth = 0
    for event, _el in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > limit:
            return True
    return False


def require_utf8(data: bytes, source: str) -> None:
    """Signing splices UTF-8 bytes into the original: refuse any other encoding."""
    body = data[3:] if data.startswith(_BOM) else data
    decl = _DECL.match(body)
    if decl is not None:
        enc = _ENCODING.search(decl.group(0))
        if enc is not None and enc.group(1).decode("ascii").lower() not in ("utf-8", "utf8"):
            raise InputFormatError(
                f"encoding {enc.group(1).decode('ascii')} is not supported (only UTF-8)",
                subject=source,
                hint="convert the document to UTF-8 first",
            )


def _skip_doctype(body: bytes, start: int, source: str, dtd: _Declared) -> int:
    """Check the DOCTYPE at ``start`` (collecting what it declares of attributes);
    the offset after it."""
    head = _DOCTYPE_HEAD.match(body, start)
    if head is None:
        raise InputFormatError("malformed XML (a DOCTYPE without a name)", subject=source)
    pos = head.end()
    if body.startswith((b"SYSTEM", b"PUBLIC"), pos):
        raise InputFormatError(
            "the DOCTYPE names an external DTD: refused (nothing is fetched)", subject=source
        )
    if body.startswith(b"[", pos):
        pos = _skip_internal_subset(body, pos + 1, source, dtd)
    while pos < len(body) and body[pos : pos + 1].isspace():
        pos += 1
    if not body.startswith(b">", pos):
        raise InputFormatError("malformed XML (an unterminated DOCTYPE)", subject=source)
    return pos + 1


def _skip_internal_subset(body: bytes, pos: int, source: str, dtd: _Declared) -> int:
    """Walk the internal subset from just after '['; the offset of its ']' + 1."""
    while True:
        while pos < len(body) and body[pos : pos + 1].isspace():
            pos += 1
        if pos >= len(body):
            raise InputFormatError("malformed XML (an unterminated DOCTYPE)", subject=source)
        if body.startswith(b"]", pos):
            return pos + 1
        if body.startswith(b"<!--", pos):
            end = body.find(b"-->", pos + 4)
            if end < 0:
                raise InputFormatError("malformed XML (an unterminated comment)", subject=source)
            pos = end + 3
        elif body.startswith(b"<?", pos):
            end = body.find(b"?>", pos + 2)
            if end < 0:
                raise InputFormatError("malformed XML (an unterminated PI)", subject=source)
            pos = end + 2
        elif body.startswith((b"<!ATTLIST", b"<!ELEMENT"), pos):
            keyword = body[pos + 2 : pos + 9]
            tokens: list[bytes] = []
            pos += 9
            while True:
                m = _DECL_TOKEN.match(body, pos)
                if m is None:
                    raise InputFormatError(
                        "malformed XML (an unterminated declaration)", subject=source
                    )
                pos = m.end()
                token = m.group(1)
                if token == b">":
                    break
                if token.startswith(b"%"):
                    raise InputFormatError(_ENTITY_REFUSAL, subject=source)
                tokens.append(token)
            if keyword == b"ATTLIST":
                ids, defaults = _attribute_declarations(tokens)
                dtd.ids += ids
                dtd.defaults += defaults
        elif body.startswith(b"<!ENTITY", pos) or body.startswith(b"%", pos):
            raise InputFormatError(_ENTITY_REFUSAL, subject=source)
        else:
            raise InputFormatError(
                "the DOCTYPE declares something other than elements and attribute lists: refused",
                subject=source,
            )


def _attribute_declarations(
    tokens: list[bytes],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(element, attribute) of each ID-typed attribute of one ATTLIST
    declaration, and of each one given a default value: the element name,
    then per attribute its name, type ('NOTATION' takes a group) and default
    ('#REQUIRED', '#IMPLIED', or a value, which '#FIXED' may precede)."""
    if not tokens:
        return [], []
    element = tokens[0].decode("utf-8", "replace")
    ids, defaults = [], []
    i = 1
    while i + 1 < len(tokens):
        name, kind = tokens[i], tokens[i + 1]
        i += 3 if kind == b"NOTATION" else 2
        if i < len(tokens) and tokens[i] == b"#FIXED":
            i += 1
        if i < len(tokens) and tokens[i] not in (b"#REQUIRED", b"#IMPLIED"):
            defaults.append((element, name.decode("utf-8", "replace")))
        i += 1
        if kind == b"ID":
            ids.append((element, name.decode("utf-8", "replace")))
    return ids, defaults


_ENTITY_REFUSAL = (
    "the DOCTYPE declares or uses entities: refused (entity expansion and external-resource "
    "attacks)"
)


@dataclass
class _Declared:
    """What the internal DTD subset declares of attributes: (element, attribute)
    pairs of type ID, and those given a default value."""

    ids: list[tuple[str, str]] = field(default_factory=list)
    defaults: list[tuple[str, str]] = field(default_factory=list)


def check_prolog(data: bytes, source: str) -> tuple[int, _Declared]:
    """Refuse what the parser must never see; the offset of the root element and
    what the internal DTD subset declares of attributes."""
    if len(data) > MAX_BYTES:
        raise InputFormatError(
            f"document larger than {MAX_BYTES >> 20} MiB ({len(data) >> 20} MiB)", subject=source
        )
    # The prolog is read as bytes: encodings that keep ASCII as it is only.
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data[:4] in (
        b"\x00\x00\xfe\xff",
        b"\xff\xfe\x00\x00",
    ):
        raise InputFormatError("not UTF-8 (UTF-16/32 byte order mark)", subject=source)
    if data[:4] in _OTHER_ENCODINGS:
        # What XML's own detection (Appendix F) reads as UTF-16, UTF-32 or
        # EBCDIC without a byte order mark.
        raise InputFormatError(f"not UTF-8 ({_OTHER_ENCODINGS[data[:4]]})", subject=source)
    offset = 3 if data.startswith(_BOM) else 0
    decl = _DECL.match(data, offset)
    pos = decl.end() if decl is not None else offset
    doctype_seen = False
    dtd = _Declared()
    # Walk the prolog: whitespace, comments, PIs and one DOCTYPE may precede the root.
    while True:
        lt = data.find(b"<", pos)
        if lt < 0:
            raise InputFormatError("not XML (no root element)", subject=source)
        if data[pos:lt].strip():
            raise InputFormatError("not XML (text before the root element)", subject=source)
        if data.startswith(b"<!--", lt):
            end = data.find(b"-->", lt + 4)
            pos = end + 3 if end >= 0 else len(data)
        elif data.startswith(b"<?", lt):
            end = data.find(b"?>", lt + 2)
            pos = end + 2 if end >= 0 else len(data)
        elif data.startswith(b"<!DOCTYPE", lt) and not doctype_seen:
            doctype_seen = True
            pos = _skip_doctype(data, lt, source, dtd)
        elif data.startswith(b"<!", lt):
            raise InputFormatError("malformed XML (markup before the root element)", subject=source)
        else:
            return lt, dtd
        if pos >= len(data):
            raise InputFormatError("not XML (no root element)", subject=source)


@dataclass(eq=False)
class XmlDocument:
    """A parsed document and what signkit reads from its DTD."""

    tree: _ElementTree
    """The parsed document."""
    source: str
    """The file (or label) it came from, for messages."""
    root_offset: int
    """Offset of the root element's '<' in the bytes parsed."""
    dtd_ids: tuple[tuple[str, str], ...] = ()
    """(element name, attribute name) pairs the internal subset declares of type ID."""
    dtd_defaults: tuple[tuple[str, str], ...] = ()
    """(element name, attribute name) pairs the internal subset gives a default value."""
    _ids: dict[tuple[str, ...], dict[str, list[_Element]]] = field(default_factory=dict)

    @property
    def root(self) -> _Element:
        """The document element."""
        return self.tree.getroot()

    def ids(self, names: Sequence[str]) -> dict[str, list[_Element]]:
        """Every Id value and the elements carrying it: attributes with these local
        names (no namespace), ``xml:id`` everywhere, and the DTD's ID attributes."""
        key = tuple(dict.fromkeys(names))
        found = self._ids.get(key)
        if found is None:
            found = {}
            for value in _id_values((*key, "xml:id"))(self.root):
                _add(found, str(value), value.getparent())
            for element_name, attribute in self.dtd_ids:
                for el in self.root.iter():
                    if isinstance(el.tag, str) and _qname(el) == element_name:
                        value = _attribute_by_qname(el, attribute)
                        if value is not None:
                            _add(found, value, el)
            self._ids[key] = found
        return found


def _add(index: dict[str, list[_Element]], value: str, el: _Element) -> None:
    hits = index.setdefault(value, [])
    if not any(h is el for h in hits):
        hits.append(el)


def _qname(el: _Element) -> str:
    local = el.tag.rpartition("}")[2]
    return f"{el.prefix}:{local}" if el.prefix else local


def _attribute_by_qname(el: _Element, qname: str) -> str | None:
    prefix, _, local = qname.rpartition(":")
    uri = XML_NS if prefix == "xml" else el.nsmap.get(prefix) if prefix else ""
    if uri is None:
        return None
    value = el.get(f"{{{uri}}}{local}" if uri else local)
    return None if value is None else str(value)


@functools.lru_cache(maxsize=32)
def _id_values(names: tuple[str, ...]) -> XPath:
    """One compiled XPath for every value of these attributes, in document
    order (names are checked NCNames, so the expression is fixed; selecting
    the attributes is faster than the elements that carry them)."""
    from lxml import etree

    return etree.XPath(" | ".join(f"//@{name}" for name in names))


def parse(data: bytes, source: str) -> XmlDocument:
    """Parse ``data`` safely (see the module docstring for what is refused)."""
    from lxml import etree

    root_offset, dtd = check_prolog(data, source)
    has_dtd = b"<!DOCTYPE" in data[:root_offset]
    try:
        root = etree.fromstring(data, _parser(has_dtd))
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "depth" in text.lower():
            raise _too_deep(source) from None
        if "huge" not in text.lower():
            raise _malformed(text, source) from None
        if has_dtd:
            raise InputFormatError(
                "a text node exceeds the parser's size limit", subject=source
            ) from None
        # A text node over libxml2's 10 MB: base64 content (an edXML attachment,
        # an embedded file). With no DTD there is nothing to expand and the
        # document is within MAX_BYTES, so only the depth limit needs keeping.
        root = _parse_large(data, source)
    if len(data) > _ATTRIBUTES_CHECKED_FROM and _crowded(root):
        raise InputFormatError(
            f"an element with more than {MAX_ATTRIBUTES:,} attributes (malformed or hostile?)",
            subject=source,
        )
    return XmlDocument(
        tree=root.getroottree(),
        source=source,
        root_offset=root_offset,
        dtd_ids=tuple(dtd.ids),
        dtd_defaults=tuple(dtd.defaults),
    )


def _crowded(root: _Element) -> bool:
    """Whether an element carries more than MAX_ATTRIBUTES attributes."""
    from lxml import etree

    return any(len(el.attrib) > MAX_ATTRIBUTES for el in root.iter(tag=etree.Element))


def _malformed(text: str, source: str) -> InputFormatError:
    reason = shorten(text, 160)
    return InputFormatError(f"malformed XML ({reason})", subject=source)


def _too_deep(source: str) -> InputFormatError:
    return InputFormatError(f"nesting deeper than {MAX_DEPTH} levels", subject=source)


def _parse_large(data: bytes, source: str) -> _Element:
    from lxml import etree

    try:
        root = etree.fromstring(data, _parser(False, huge=True))
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "depth" in text.lower():
            raise _too_deep(source) from None
        raise _malformed(text, source) from None
    if _depth_over(root, MAX_DEPTH):
        raise _too_deep(source)
    return root
