"""XMLDSig reference processing: dereference a URI, apply the transforms, hash.

The same code computes the digests signkit writes, re-computes them in the
signing self-check from the output bytes, and checks them in ``verify``.

Same-document URIs: ``""`` (the document without comments, PIs and comments
outside the root included: XMLDSig §4.4.3.2), ``#id`` (the element, no
comments), ``#xpointer(/)`` and ``#xpointer(id('id'))`` (with comments).
Other URIs are files relative to the signature's directory (a detached
signature's data), never a URL or an absolute path, read under the parser's
size bound. Transforms: enveloped signature, C14N 1.0/1.1/exclusive (with
InclusiveNamespaces), XPath, XPath Filter 2.0, base64 and the OPC
relationship transform; XSLT is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from signkit.errors import DocumentError, SignkitError
from signkit.formats.xml import c14n
from signkit.formats.xml.algorithms import DS
from signkit.formats.xml.c14n import Key, NodeSet
from signkit.formats.xml.parse import MAX_BYTES, XmlDocument, parse
from signkit.fsio import read_within

if TYPE_CHECKING:
    from lxml.etree import _Element, _ElementTree

ENVELOPED = DS + "enveloped-signature"
BASE64 = DS + "base64"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
XSLT = "http://www.w3.org/TR/1999/REC-xslt-19991116"
RELATIONSHIP = "http://schemas.openxmlformats.org/package/2006/RelationshipTransform"
_OPC_SIG = "http://schemas.openxmlformats.org/package/2006/digital-signature"
_OPC_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_INCLUSIVE_NAMESPACES = "{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces"
XPOINTER_ID = re.compile(r"""^xpointer\(id\(\s*(['"])([^'"]+)\1\s*\)\)$""")
VERIFY_ID_ATTRIBUTES = ("Id", "ID", "id")
"""Attribute names a verifier takes for Ids (besides xml:id and DTD-declared IDs)."""


class SignatureFormatError(DocumentError):
    """The signature is malformed: a required element or value is missing or unreadable."""


class UnsupportedAlgorithmError(DocumentError):
    """The signature uses an algorithm or transform signkit does not implement."""


class SignedDataNotFoundError(DocumentError):
    """A reference names data that is not there."""


class AmbiguousReferenceError(DocumentError):
    """A reference names more than one element (duplicate Ids: signature wrapping)."""


Data = NodeSet | bytes


@dataclass(frozen=True)
class Target:
    """What a reference URI names, before any transform."""

    data: Data
    """The node-set or octets."""
    element: _Element | None
    """The element named (the root for the whole document); None for external octets."""
    external: str | None = None
    """The file named, for a detached reference."""


@dataclass
class Context:
    """Where references of one signature are resolved."""

    doc: XmlDocument
    """The document holding the signature."""
    signature: _Element
    """The ds:Signature the references belong to (what an enveloped transform removes)."""
    base: Path | None
    """Directory of relative file references (None: detached data is not looked for)."""
    id_attributes: tuple[str, ...] = VERIFY_ID_ATTRIBUTES
    """Attribute local names that carry Ids."""
    _files: dict[str, bytes | XmlDocument] = field(default_factory=dict)

    def resolve(self, uri: str | None) -> Target:
        """Dereference ``uri`` (see the module docstring)."""
        if uri is None:
            raise SignedDataNotFoundError("a reference without URI (its data is unknown)")
        if uri == "":
            return Target(NodeSet(tree=self.doc.tree), self.doc.root)
        if uri.startswith("#"):
            return _fragment(self.doc, uri[1:], self.id_attributes)
        name, _, fragment = uri.partition("#")
        data = self._file(name)
        if not fragment:
            assert isinstance(data, bytes)  # noqa: S101 - _file returns bytes without fragment
            return Target(data, None, external=name)
        other = self._document(name)
        target = _fragment(other, fragment, self.id_attributes, where=name)
        return Target(target.data, target.element, external=name)

    def provide(self, name: str, data: bytes) -> None:
        """Use ``data`` as the content of the file reference ``name`` (bytes already read)."""
        self._files[name] = data

    def _file(self, name: str) -> bytes:
        cached = self._files.get(name)
        if isinstance(cached, bytes):
            return cached
        self._files[name] = data = read_external(name, self.base)
        return data

    def _document(self, name: str) -> XmlDocument:
        key = name + "#"
        cached = self._files.get(key)
        if isinstance(cached, XmlDocument):
            return cached
        try:
            doc = parse(self._file(name), name)
        except SignedDataNotFoundError:
            raise
        except SignkitError as exc:
            raise SignatureFormatError(f"the referenced file {name}: {exc.message}") from None
        self._files[key] = doc
        return doc


def read_external(uri: str, base: Path | None) -> bytes:
    """The bytes of a file a detached reference names, relative to ``base``."""
    name = unquote(uri)
    if base is None or "://" in uri or name.startswith("/") or ":" in name.split("/", 1)[0]:
        raise SignedDataNotFoundError(f"reference {uri} is not a relative file reference")
    path = base / name
    try:
        if not path.is_file():
            raise SignedDataNotFoundError(f"the referenced file {name} is not a regular file")
        if path.stat().st_size > MAX_BYTES:
            # The parser's bound: a hostile signature cannot make us read gigabytes.
            limit = MAX_BYTES >> 20
            raise SignedDataNotFoundError(f"the referenced file {name} is over {limit} MiB")
        with path.open("rb") as fh:
            return read_within(fh, MAX_BYTES)
    except OSError as exc:
        raise SignedDataNotFoundError(
            f"cannot read the referenced file {name} ({exc.strerror})"
        ) from None


def _fragment(
    doc: XmlDocument, fragment: str, names: Sequence[str], where: str | None = None
) -> Target:
    if fragment == "xpointer(/)":
        return Target(NodeSet(tree=doc.tree, comments=True), doc.root)
    m = XPOINTER_ID.match(fragment)
    ident, comments = (m.group(2), True) if m else (fragment, False)
    hits = doc.ids(names).get(ident, [])
    place = f" in {where}" if where else ""
    if not hits:
        raise SignedDataNotFoundError(f"reference #{ident} names no element{place}")
    if len(hits) > 1:
        count = len(hits)
        raise AmbiguousReferenceError(
            f"reference #{ident} names {count} elements{place} (duplicate Ids)"
        )
    element = hits[0]
    return Target(NodeSet(tree=doc.tree, apex=element, comments=comments), element)


# ---------------------------------------------------------------- transforms


def transform(data: Data, transform_el: _Element, ctx: Context) -> Data:
    """One ds:Transform applied to ``data``."""
    algorithm = transform_el.get("Algorithm")
    if algorithm == ENVELOPED:
        nodes = _as_nodes(data, ctx)
        if not _within(ctx.signature, nodes.tree):
            return nodes  # the signature is not in that document
        if nodes.members is None:
            return NodeSet(
                tree=nodes.tree,
                apex=nodes.apex,
                comments=nodes.comments,
                excluded=(*nodes.excluded, ctx.signature),
            )
        gone = set(c14n.subtree_keys(ctx.signature))
        return nodes.restricted(lambda k: k not in gone)
    method = c14n.method_of(algorithm, _prefix_list(transform_el))
    if method is not None:
        return c14n.canonicalize(_as_nodes(data, ctx), method)
    if algorithm == BASE64:
        text = data if isinstance(data, bytes) else _text_of(data).encode("utf-8")
        try:
            return base64.b64decode(b"".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureFormatError("the base64 transform's input is not base64") from None
    if algorithm == XPATH:
        return _xpath(_as_nodes(data, ctx), transform_el)
    if algorithm == FILTER2:
        return _filter2(_as_nodes(data, ctx), transform_el)
    if algorithm == RELATIONSHIP:
        return _relationships(data, transform_el, ctx)
    if algorithm == XSLT:
        raise UnsupportedAlgorithmError("XSLT transforms are not supported")
    raise UnsupportedAlgorithmError(f"unsupported transform {algorithm}")


def _within(element: _Element, tree: _ElementTree) -> bool:
    """``element`` is part of ``tree`` (an element taken out keeps its document)."""
    top = element
    while (parent := top.getparent()) is not None:
        top = parent
    return top is tree.getroot()


def to_octets(data: Data, method: c14n.Method = c14n.INCLUSIVE) -> bytes:
    """The octets of a transform chain's result (a node-set canonicalised)."""
    return data if isinstance(data, bytes) else c14n.canonicalize(data, method)


def processed(reference: _Element, ctx: Context) -> Data:
    """The data of a ds:Reference after its transforms (not yet made octets)."""
    data: Data = ctx.resolve(reference.get("URI")).data
    for t in reference.iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform"):
        data = transform(data, t, ctx)
    return data


def _as_nodes(data: Data, ctx: Context) -> NodeSet:
    if isinstance(data, NodeSet):
        return data
    try:
        doc = parse(data, "transform input")
    except SignkitError as exc:
        raise SignatureFormatError(f"a transform's input is not XML ({exc.message})") from None
    return NodeSet(tree=doc.tree, comments=True)


def _prefix_list(transform_el: _Element) -> tuple[str, ...]:
    inclusive = transform_el.find(_INCLUSIVE_NAMESPACES)
    if inclusive is None:
        return ()
    return tuple((inclusive.get("PrefixList") or "").split())


def _text_of(nodes: NodeSet) -> str:
    """The string value of a node-set's text nodes, in document order."""
    if nodes.members is None and nodes.apex is not None and not nodes.excluded:
        return "".join(nodes.apex.itertext())
    keys = nodes.keys()
    out: list[str] = []
    for el in nodes.tree.getroot().iter():
        if isinstance(el.tag, str) and el.text is not None and (el, 0) in keys:
            out.append(el.text)
        if el.tail is not None and (el, 1) in keys and el.getparent() is not None:
            out.append(el.tail)
    return "".join(out)


def _xpath_element(transform_el: _Element, tag: str) -> list[_Element]:
    found: list[_Element] = list(transform_el.iterfind(tag))
    if not found:
        raise SignatureFormatError("an XPath transform without its expression")
    return found


def _compile(expression_el: _Element, expression: str) -> object:
    from lxml import etree

    namespaces = {p: u for p, u in expression_el.nsmap.items() if p}
    here = [expression_el]
    try:
        return etree.XPath(
            expression,
            namespaces=namespaces,
            extensions={(None, "here"): lambda _ctx: here},
        )
    except etree.XPathSyntaxError as exc:
        raise SignatureFormatError(f"an XPath transform does not compile ({exc})") from None


def _evaluate(compiled: object, node: object) -> list[object]:
    from lxml import etree

    try:
        result = compiled(node)  # type: ignore[operator]
    except etree.XPathError as exc:
        raise SignatureFormatError(f"an XPath transform fails ({exc})") from None
    return list(result) if isinstance(result, list) else []


def _key_of(item: object) -> Key | None:
    """The node-set key of one XPath result (None for what has no key)."""
    getparent = getattr(item, "getparent", None)
    if getattr(item, "is_attribute", False) and getparent is not None:
        return (getparent(), item.attrname)  # type: ignore[attr-defined]
    if getattr(item, "is_text", False) and getparent is not None:
        return (getparent(), 0)
    if getattr(item, "is_tail", False) and getparent is not None:
        return (getparent(), 1)
    if hasattr(item, "tag"):
        return item
    return None


def _xpath(nodes: NodeSet, transform_el: _Element) -> NodeSet:
    """XMLDSig §6.6.3: keep the nodes of the set for which the expression is true.

    Evaluated once over the document (every node as context node), not once per
    node; namespace nodes follow their element."""
    (expression_el, *_) = _xpath_element(transform_el, f"{{{DS}}}XPath")
    expression = (expression_el.text or "").strip()
    compiled = _compile(expression_el, f"//node()[{expression}] | //@*[{expression}]")
    selected = {k for k in map(_key_of, _evaluate(compiled, nodes.tree)) if k is not None}
    return nodes.restricted(selected.__contains__)


def _filter2(nodes: NodeSet, transform_el: _Element) -> NodeSet:
    """XPath Filter 2.0: intersect, subtract or union the subtrees each expression
    selects, starting from the whole document; keep the input's nodes in the result."""
    everything = set(NodeSet(tree=nodes.tree, comments=True).keys())
    current = set(everything)
    for expression_el in _xpath_element(transform_el, f"{{{FILTER2}}}XPath"):
        operation = expression_el.get("Filter")
        compiled = _compile(expression_el, (expression_el.text or "").strip())
        selected: set[Key] = set()
        for item in _evaluate(compiled, nodes.tree):
            key = _key_of(item)
            if key is None:
                continue
            if isinstance(key, tuple):
                selected.add(key)
            else:
                selected.update(c14n.subtree_keys(key))
        if operation == "intersect":
            current &= selected
        elif operation == "subtract":
            current -= selected
        elif operation == "union":
            current |= selected
        else:
            raise SignatureFormatError(f"XPath Filter 2.0: unknown Filter '{operation}'")
    return nodes.restricted(current.__contains__)


def _relationships(data: Data, transform_el: _Element, ctx: Context) -> bytes:
    """ECMA-376 Part 2 §13.2.4.24: the Relationship elements a package signature
    selects (by Id or type), sorted by Id, TargetMode made explicit, nothing else."""
    from lxml import etree

    nodes = _as_nodes(data, ctx)
    ids = {e.get("SourceId") for e in transform_el.iter(f"{{{_OPC_SIG}}}RelationshipReference")}
    types = {
        e.get("SourceType") for e in transform_el.iter(f"{{{_OPC_SIG}}}RelationshipsGroupReference")
    }
    root = nodes.tree.getroot()
    chosen = [
        r
        for r in root.iterchildren(f"{{{_OPC_RELS}}}Relationship")
        if r.get("Id") in ids or r.get("Type") in types
    ]
    out = etree.Element(f"{{{_OPC_RELS}}}Relationships", nsmap={None: _OPC_RELS})
    for r in sorted(chosen, key=lambda e: e.get("Id") or ""):
        copy = etree.SubElement(out, f"{{{_OPC_RELS}}}Relationship")
        for name, value in r.attrib.items():
            copy.set(name, value)
        if copy.get("TargetMode") is None:
            copy.set("TargetMode", "Internal")
    return bytes(etree.tostring(out, encoding="UTF-8"))


def uri_base(signature_file: str | os.PathLike[str]) -> Path:
    """The directory relative references of a signature file are resolved in."""
    return Path(os.path.abspath(signature_file)).parent
