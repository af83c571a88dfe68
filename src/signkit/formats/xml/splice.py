"""Where elements sit in a document's bytes, to splice a signature in.

Signing never re-serialises a document: the output is the original bytes
with new bytes inserted. A small tokenizer over the original bytes finds
where a given element (by its document-order index in the parse) starts and
ends; everything else stays byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from signkit.formats.xml.parse import XmlDocument

if TYPE_CHECKING:
    from lxml.etree import _Element, _ElementTree

# Every piece of markup, whole: comments, CDATA, PIs, end tags, and start or
# empty-element tags (whose quoted attribute values may hold '>').
_MARKUP = re.compile(
    rb"""<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|</[^>]*>|<[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>""",
    re.DOTALL,
)


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


def element_index(tree: _ElementTree, element: _Element) -> int:
    """Document-order index of ``element`` among all elements (what ``locate`` counts)."""
    for i, el in enumerate(tree.getroot().iter(tag=etree.Element)):
        if el is element:
            return i
    raise ValueError("element not in this tree")


def _locate_root(data: bytes, start: int) -> ElementSpan | None:
    """The root element without walking its content: after it come only
    whitespace, comments and PIs, so its end tag is found from the end.
    None when a PI follows the root (a PI may contain '<?'): walk instead."""
    for m in _MARKUP.finditer(data, start):
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


def locate(data: bytes, index: int, start: int = 0) -> ElementSpan:
    """Find the ``index``-th element (document order) of well-formed ``data``
    whose root element begins at ``start`` (after any DOCTYPE).

    ``data`` must already have parsed: comments, CDATA sections and PIs are
    matched whole, so a '<' inside them is never taken for a tag.
    """
    if index == 0:
        span = _locate_root(data, start)
        if span is not None:
            return span
    count = -1
    depth = 0
    target_depth = -1
    start = start_tag_end = 0
    for m in _MARKUP.finditer(data, start):
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


def _raw_qname(data: bytes, span: ElementSpan) -> bytes:
    m = re.match(rb"<([^\s/>]+)", data[span.start : span.start_tag_end])
    assert m is not None  # noqa: S101 - the tokenizer matched a tag here
    return m.group(1)


def splice(
    doc: XmlDocument, data: bytes, parent: _Element, missing: list[str], signature: bytes
) -> bytes:
    """``data`` with ``signature`` inserted as the last child of ``parent`` (inside
    the ``missing`` wrappers, created with the parent's prefix)."""
    span = locate(data, element_index(doc.tree, parent), doc.root_offset)
    qname = _raw_qname(data, span)
    prefix = qname.split(b":")[0] + b":" if b":" in qname else b""
    opening = b"".join(b"<" + prefix + n.encode() + b">" for n in missing)
    closing = b"".join(b"</" + prefix + n.encode() + b">" for n in reversed(missing))
    insert = opening + signature + closing
    if span.empty:
        return (
            data[: span.start_tag_end - 2]
            + b">"
            + insert
            + b"</"
            + qname
            + b">"
            + data[span.after :]
        )
    return data[: span.end] + insert + data[span.end :]


def root_bytes(doc: XmlDocument, data: bytes) -> bytes:
    """The bytes of the document element, as written."""
    span = locate(data, 0, doc.root_offset)
    return data[span.start : span.after]
