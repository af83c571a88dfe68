"""Hostile-input-safe XML parsing and the byte map used to splice signatures in.

Documents are parsed only to compute digests; the output is always the
original bytes with new bytes inserted, so this module also finds, by a small
tokenizer over the original bytes, where a given element starts and ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

from signkit.errors import InputFormatError

MAX_BYTES = 64 << 20
"""Largest document accepted (the whole document is held in memory)."""
MAX_DEPTH = 256
"""Deepest element nesting accepted (libxml2's own limit without XML_PARSE_HUGE)."""

_BOM = b"\xef\xbb\xbf"
_DECL = re.compile(rb"<\?xml\s[^>]*?\?>")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
# Every piece of markup, whole: comments, CDATA, PIs, end tags, and start or
# empty-element tags (whose quoted attribute values may hold '>').
_MARKUP = re.compile(
    rb"""<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|</[^>]*>|<[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""",
    re.DOTALL,
)


def _parser() -> Any:
    # No DTD at all (refused before parsing), no entity expansion, no network,
    # libxml2's size and depth limits kept (no huge_tree).
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=False,
        collect_ids=False,
    )


_PARSER: Any = None


def check_prolog(data: bytes, source: str) -> None:
    """Refuse what the parser must never see: other encodings and any DTD."""
    if len(data) > MAX_BYTES:
        raise InputFormatError(
            f"document larger than {MAX_BYTES >> 20} MiB ({len(data) >> 20} MiB)", subject=source
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data[:4] in (
        b"\x00\x00\xfe\xff",
        b"\xff\xfe\x00\x00",
    ):
        raise InputFormatError("not UTF-8 (UTF-16/32 byte order mark)", subject=source)
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
    pos = decl.end() if decl is not None else 0
    # Walk the prolog: whitespace, comments and PIs may precede the root.
    while True:
        lt = body.find(b"<", pos)
        if lt < 0:
            raise InputFormatError("not XML (no root element)", subject=source)
        if body[pos:lt].strip():
            raise InputFormatError("not XML (text before the root element)", subject=source)
        if body.startswith(b"<!--", lt):
            end = body.find(b"-->", lt + 4)
            pos = end + 3 if end >= 0 else len(body)
        elif body.startswith(b"<?", lt):
            end = body.find(b"?>", lt + 2)
            pos = end + 2 if end >= 0 else len(body)
        elif body.startswith(b"<!", lt):
            raise InputFormatError(
                "DTDs are not allowed (DOCTYPE found): entity and external-resource "
                "attacks are refused",
                subject=source,
            )
        else:
            return
        if pos >= len(body):
            raise InputFormatError("not XML (no root element)", subject=source)


def parser() -> Any:
    """This process's secure parser (lxml parsers are reused, not shared across threads)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = _parser()
    return _PARSER


def parse(data: bytes, source: str) -> Any:
    """Parse ``data`` safely (no DTD, entities, network; size and depth limits)."""
    check_prolog(data, source)
    try:
        root = etree.fromstring(data, parser())
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        if "Excessive depth" in text or "depth" in text.lower():
            raise InputFormatError(
                f"nesting deeper than {MAX_DEPTH} levels", subject=source
            ) from None
        if "huge" in text.lower():
            raise InputFormatError(
                "a text node exceeds the parser's size limit", subject=source
            ) from None
        raise InputFormatError(f"not well-formed XML ({text[:160]})", subject=source) from None
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise InputFormatError("DTDs are not allowed (DOCTYPE found)", subject=source)
    return tree


@dataclass(frozen=True)
class ElementSpan:
    """Where one element sits in the original bytes."""

    start: int
    """Offset of '<' of the start tag."""
    start_tag_end: int
    """Offset just after the start tag's '>'."""
    end: int
    """Offset of '<' of the end tag (== start_tag_end - 2 for an empty-element tag)."""
    after: int
    """Offset just after the element."""
    empty: bool
    """Written as an empty-element tag ``<a/>``."""


def element_index(tree: Any, element: Any) -> int:
    """Document-order index of ``element`` among all elements (what ``locate`` counts)."""
    for i, el in enumerate(tree.getroot().iter(tag=etree.Element)):
        if el is element:
            return i
    raise ValueError("element not in this tree")


def _locate_root(data: bytes) -> ElementSpan | None:
    """The root element without walking its content: after it come only
    whitespace, comments and PIs, so its end tag is found from the end.
    None when a PI follows the root (a PI may contain '<?'): walk instead."""
    for m in _MARKUP.finditer(data):
        if m.group(0)[1:2] not in (b"!", b"?"):
            break
    else:
        return None
    if m.group(0).endswith(b"/>"):
        return ElementSpan(m.start(), m.end(), m.end() - 2, m.end(), True)
    end = len(data.rstrip())
    while data.endswith(b"-->", 0, end):
        end = len(data[: data.rindex(b"<!--", 0, end)].rstrip())
    if data.endswith(b"?>", 0, end) or not data.endswith(b">", 0, end):
        return None
    lt = data.rindex(b"<", 0, end)
    if not data.startswith(b"</", lt) or lt < m.end():
        return None
    return ElementSpan(m.start(), m.end(), lt, end, False)


def locate(data: bytes, index: int) -> ElementSpan:
    """Find the ``index``-th element (document order) of well-formed ``data``.

    ``data`` must already have parsed (no DTD): comments, CDATA sections and
    PIs are matched whole, so a '<' inside them is never taken for a tag.
    """
    if index == 0:
        span = _locate_root(data)
        if span is not None:
            return span
    count = -1
    depth = 0
    target_depth = -1
    start = start_tag_end = 0
    for m in _MARKUP.finditer(data):
        token = m.group(0)
        second = token[1:2]
        if second in (b"!", b"?"):
            continue
        if second == b"/":
            depth -= 1
            if depth == target_depth:
                return ElementSpan(start, start_tag_end, m.start(), m.end(), False)
            continue
        count += 1
        empty = token.endswith(b"/>")
        if count == index:
            if empty:
                return ElementSpan(m.start(), m.end(), m.end() - 2, m.end(), True)
            start, start_tag_end = m.start(), m.end()
            target_depth = depth
        if not empty:
            depth += 1
    raise ValueError(f"element {index} not found in the bytes")
