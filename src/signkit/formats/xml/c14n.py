"""Canonical XML (C14N 1.0, 1.1 and exclusive, with or without comments) of
node-sets as XMLDSig defines them, canonicalised where they stand.

A node-set is a whole document, an element's subtree (what ``#Id`` names),
either minus the subtrees of enveloped signatures, or an explicit set of
nodes (what XPath and XPath Filter 2.0 transforms select). The element is
never serialised and re-parsed: its ancestors' namespaces and, for inclusive
C14N, their ``xml:*`` attributes (C14N 1.0 §2.4; 1.1 §2.4 with its xml:base
fix-up and no xml:id) come from the document itself.

A whole document is handed to libxml2's canonicaliser (exact, and fast on
large documents); every other node-set goes through the walk below, which
follows the specifications' rules for document subsets. Both are compared
on random documents by the tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from signkit.formats.xml.parse import XML_NS

if TYPE_CHECKING:
    from lxml.etree import _Element, _ElementTree

C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
WITH_COMMENTS = {
    C14N10: C14N10 + "#WithComments",
    C14N11: C14N11 + "#WithComments",
    EXC_C14N: EXC_C14N + "WithComments",
}
_XML = "{" + XML_NS + "}"
# xml:* attributes C14N 1.1 carries onto an orphan element as they are (§2.4).
_SIMPLE_INHERITABLE = (_XML + "lang", _XML + "space")


@dataclass(frozen=True)
class Method:
    """A canonicalisation algorithm and its parameters."""

    uri: str
    """The algorithm URI as written."""
    exclusive: bool
    """Exclusive C14N (only visibly used namespaces)."""
    comments: bool
    """Comments are kept (the #WithComments variants)."""
    v11: bool = False
    """C14N 1.1 (xml:base fix-up, xml:id not inherited)."""
    prefixes: tuple[str, ...] = ()
    """Exclusive C14N's InclusiveNamespaces PrefixList ('#default' for the default one)."""


def method_of(uri: str | None, prefixes: tuple[str, ...] = ()) -> Method | None:
    """The canonicalisation ``uri`` names, or None when it is not one."""
    for base, commented in WITH_COMMENTS.items():
        if uri in (base, commented):
            exclusive = base == EXC_C14N
            return Method(
                uri=uri,
                exclusive=exclusive,
                comments=uri == commented,
                v11=base == C14N11,
                prefixes=prefixes if exclusive else (),
            )
    return None


INCLUSIVE = Method(uri=C14N10, exclusive=False, comments=False)
"""Inclusive C14N 1.0 without comments: XMLDSig's node-set-to-octets conversion."""


# A node of a node-set: an element, comment or PI; (element, 0) its text,
# (element, 1) its tail; (element, "{ns}name") one of its attributes.
Key = Hashable


@dataclass(eq=False)
class NodeSet:
    """An XPath node-set of one document, as XMLDSig transforms pass it on."""

    tree: _ElementTree
    """The document the nodes belong to."""
    apex: _Element | None = None
    """The element whose subtree this is; None: the whole document."""
    comments: bool = False
    """Comment nodes are in the set (``#xpointer(...)`` and ``URI="#xpointer(/)"``)."""
    excluded: tuple[_Element, ...] = ()
    """Subtrees taken out (enveloped signatures)."""
    members: frozenset[Key] | None = None
    """An explicit set of nodes (after an XPath transform); None: the shape above."""

    def keys(self) -> frozenset[Key]:
        """Every node of the set, as keys (see Key)."""
        if self.members is not None:
            return self.members
        out: set[Key] = set()
        if self.apex is not None:
            starts: list[_Element] = [self.apex]
        else:
            root = self.tree.getroot()
            starts = [*root.itersiblings(preceding=True), root, *root.itersiblings()]
        skip = {id(e) for e in self.excluded}
        for start in starts:
            out.update(subtree_keys(start, comments=self.comments, skip=skip))
        return frozenset(out)

    def restricted(self, keep: Callable[[Key], bool]) -> NodeSet:
        """The nodes of this set for which ``keep`` holds."""
        return NodeSet(
            tree=self.tree,
            apex=self.apex,
            comments=self.comments,
            members=frozenset(k for k in self.keys() if keep(k)),
        )


def subtree_keys(
    node: _Element, *, comments: bool = True, skip: set[int] | None = None, tail: bool = False
) -> Iterator[Key]:
    """The keys of ``node``'s subtree (its attributes, text, descendants)."""
    skip = skip or set()
    stack = [node]
    if tail and node.tail is not None:
        yield (node, 1)
    while stack:
        el = stack.pop()
        if id(el) in skip:
            continue
        if not isinstance(el.tag, str):
            if el.tag.__name__ != "Comment" or comments:
                yield el
            continue
        yield el
        for name in el.attrib:
            yield (el, name)
        if el.text is not None:
            yield (el, 0)
        for child in el:
            if child.tail is not None:
                yield (child, 1)  # text after an excluded element stays in the set
            stack.append(child)


def canonicalize(nodes: NodeSet, method: Method) -> bytes:
    """The canonical form of ``nodes`` under ``method``."""
    if nodes.members is None:
        if nodes.apex is None:
            return _whole_document(nodes, method)
        fast = _where_it_stands(nodes, method) if not nodes.excluded else None
        if fast is not None:
            return fast
        fast = _subtree(nodes, method)
        if fast is not None:
            return fast
    return _Walker(nodes, method).run()


def canonicalize_element(element: _Element, method: Method) -> bytes:
    """The canonical form of ``element``'s subtree, where it stands in its document."""
    return canonicalize(
        NodeSet(tree=element.getroottree(), apex=element, comments=method.comments), method
    )


def _whole_document(nodes: NodeSet, method: Method) -> bytes:
    """libxml2 on the whole document. Enveloped signatures are left out of a copy
    of the root element (taking an element out of the parsed tree and putting it
    back lets lxml rebind its prefixes when two prefixes name one namespace; and
    lxml's copy of a whole tree reverses the nodes after the root), the PIs and
    comments around the root are written from the original.

    A document has no orphan element, so C14N 1.1 and 1.0 agree on it."""
    from lxml import etree

    if not nodes.excluded:
        try:
            return _libxml2(nodes.tree, method, method.comments and nodes.comments)
        except etree.C14NError:
            # libxml2 refuses relative namespace URIs; the walk renders them as written.
            return _Walker(nodes, method).run()
    root = nodes.tree.getroot()
    if any(e is root for e in nodes.excluded):
        return b""  # the root itself is excluded: nothing is left
    body = _subtree(
        NodeSet(tree=nodes.tree, apex=root, comments=nodes.comments, excluded=nodes.excluded),
        method,
    )
    if body is None:
        return _Walker(nodes, method).run()
    walker = _Walker(NodeSet(tree=nodes.tree, comments=nodes.comments), method)
    for before in reversed(list(root.itersiblings(preceding=True))):
        if walker._other(before):
            walker.out.append("\n")
    head = "".join(walker.out).encode("utf-8")
    walker.out.clear()
    for after in root.itersiblings():
        mark = len(walker.out)
        walker.out.append("\n")
        if not walker._other(after):
            del walker.out[mark:]
    return head + body + "".join(walker.out).encode("utf-8")


def _where_it_stands(nodes: NodeSet, method: Method) -> bytes | None:
    """libxml2 on the element where it stands (lxml hands it the element with
    its ancestors' namespace declarations), when that is exact: C14N 1.0 only
    (1.1 fixes up xml:base), no xml:* attribute above the element for inclusive
    C14N (lxml does not carry them), no default namespace above it or on it
    (lxml then writes a spurious xmlns="" deeper down), and no namespace
    declared below it. None otherwise, or when libxml2 refuses the element."""
    from lxml import etree

    apex = nodes.apex
    assert apex is not None  # noqa: S101 - callers check
    parent = apex.getparent()
    if parent is None or method.v11 or parent.nsmap.get(None):
        return None
    if not method.exclusive:
        for element in (parent, *parent.iterancestors()):
            for name in element.attrib:
                if name.startswith(_XML):
                    return None
    started = False
    for event, item in etree.iterwalk(apex, events=("start", "start-ns")):
        if event == "start":
            started = True
        elif started or not item[0]:
            # A declaration below the element (libxml2 then writes one the
            # ancestors make redundant) or a default namespace on it.
            return None
    try:
        return bytes(
            etree.tostring(
                apex,
                method="c14n",
                exclusive=method.exclusive,
                with_comments=method.comments and nodes.comments,
                inclusive_ns_prefixes=list(method.prefixes) or None,
            )
        )
    except (etree.C14NError, ValueError):
        return None


def _subtree(nodes: NodeSet, method: Method) -> bytes | None:
    """libxml2 on a copy of an element's subtree made the root of a document of
    its own, carrying what the walk would render from the ancestors: every
    namespace in scope and (inclusive C14N) the inherited xml:* attributes.
    Excluded children are not copied; deeper excluded elements are removed from
    the copy. None when the copy could not be exact (two prefixes bound to one
    namespace somewhere in the subtree: lxml reconciles namespaces by URI), or
    libxml2 refuses it."""
    import copy

    from lxml import etree

    apex = nodes.apex
    assert apex is not None  # noqa: S101 - callers check
    scope = {p: u for p, u in apex.nsmap.items() if u or p is not None}
    if not _one_prefix_per_namespace(apex):
        return None
    attrib = dict(apex.attrib)
    if not method.exclusive:
        attrib.update(_Walker(nodes, method)._inherited_xml_attributes(apex))
    excluded = {id(e) for e in nodes.excluded}
    try:
        root = etree.Element(apex.tag, nsmap=scope)
        for name, value in attrib.items():
            root.set(name, value)
        root.text = apex.text
        for child in apex:
            if id(child) not in excluded:
                root.append(copy.deepcopy(child))
            elif child.tail:
                # The text after an excluded element stays where it was.
                last = root[-1] if len(root) else None
                if last is not None:
                    last.tail = (last.tail or "") + child.tail
                else:
                    root.text = (root.text or "") + child.tail
        for element in nodes.excluded:
            path = _index_path_below(apex, element)
            if path is not None and len(path) > 1:
                _remove_keeping_tail(_follow(root, _shifted(apex, path, excluded)))
        return _libxml2(etree.ElementTree(root), method, method.comments and nodes.comments)
    except (etree.C14NError, ValueError):
        return None


def _one_prefix_per_namespace(apex: _Element) -> bool:
    """No element of the subtree has two prefixes for one namespace in scope
    (lxml drops such a declaration as redundant when the copy is attached).

    When no namespace is declared with two prefixes anywhere in the subtree or
    above it, none can be. Otherwise only the apex and the elements that
    declare a namespace are looked at: an element that declares none has its
    parent's in scope. (An element's ``nsmap`` is built from all its
    ancestors: asking every element of a document for it cost more than
    canonicalising the document.)"""
    from lxml import etree

    prefixes: dict[str, set[str | None]] = {}
    for prefix, uri in apex.nsmap.items():
        if uri:
            prefixes.setdefault(uri, set()).add(prefix)
    for _event, (prefix, uri) in etree.iterwalk(apex, events=("start-ns",)):
        if uri:
            prefixes.setdefault(uri, set()).add(prefix or None)
    if all(len(names) == 1 for names in prefixes.values()):
        return True
    declares = False
    for event, item in etree.iterwalk(apex, events=("start", "start-ns")):
        if event == "start-ns":
            declares = True
        elif item is apex or declares:
            declares = False
            uris = [u for u in item.nsmap.values() if u]
            if len(set(uris)) != len(uris):
                return False
    return True


def _shifted(apex: _Element, path: list[int], excluded: set[int]) -> list[int]:
    """``path`` in the copy, where excluded children of the apex are missing."""
    first = path[0] - sum(1 for c in apex[: path[0]] if id(c) in excluded)
    return [first, *path[1:]]


def _index_path_below(top: _Element, element: _Element) -> list[int] | None:
    """Child positions from ``top`` down to ``element`` (None: not below it)."""
    path = []
    node = element
    while node is not top:
        parent = node.getparent()
        if parent is None:
            return None
        path.append(parent.index(node))
        node = parent
    return list(reversed(path)) if path else None


def _follow(root: _Element, path: list[int]) -> _Element:
    node = root
    for i in path:
        node = node[i]
    return node


def detach(element: _Element) -> None:
    """Take ``element`` out of its (disposable) tree, the text after it left in place."""
    _remove_keeping_tail(element)


def _remove_keeping_tail(element: _Element) -> None:
    """Take ``element`` out; the text after it stays (lxml moves a tail with its element)."""
    parent = element.getparent()
    assert parent is not None  # noqa: S101 - callers never pass the root
    tail = element.tail
    if tail:
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _libxml2(tree: _ElementTree, method: Method, comments: bool) -> bytes:
    from lxml import etree

    return bytes(
        etree.tostring(
            tree,
            method="c14n",
            exclusive=method.exclusive,
            with_comments=comments,
            inclusive_ns_prefixes=list(method.prefixes) or None,
        )
    )


_TEXT_SPECIAL = re.compile("[&<>\r]")
_ATTR_SPECIAL = re.compile('[&<"\t\n\r]')


def escape_text(value: str) -> str:
    """Character data as C14N writes it (also valid XML text anywhere)."""
    if not _TEXT_SPECIAL.search(value):
        return value
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
    )


def escape_attribute(value: str) -> str:
    """An attribute value as C14N writes it, to go between double quotes."""
    if not _ATTR_SPECIAL.search(value):
        return value
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


def quote_attribute(value: str) -> str:
    """``value`` as a double-quoted attribute value (what signkit writes)."""
    return f'"{escape_attribute(value)}"'


@dataclass
class _Walker:
    """The node-set walk of C14N 1.0 §2.3/§2.4, C14N 1.1 and Exclusive C14N §3."""

    nodes: NodeSet
    method: Method
    out: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.nodes
        if n.members is not None:
            members = n.members
            self.element_in: Callable[[_Element], bool] = members.__contains__
            self.key_in: Callable[[Key], bool] = members.__contains__
            self.ancestor_in: Callable[[_Element], bool] = members.__contains__
        else:
            # A subtree or the document: every node under the apex but the
            # excluded subtrees (never walked into) and, without comments,
            # comments; nothing above the apex.
            self.element_in = lambda _el: True
            self.key_in = lambda _key: True
            self.ancestor_in = lambda _el: False

    def run(self) -> bytes:
        n = self.nodes
        skip = {id(e) for e in n.excluded}
        if n.apex is not None and n.members is None:
            self._element(n.apex, {}, parent_in=False, skip=skip)
        else:
            root = n.tree.getroot()
            for before in reversed(list(root.itersiblings(preceding=True))):
                if self._other(before):
                    self.out.append("\n")
            self._element(root, {}, parent_in=False, skip=skip)
            for after in root.itersiblings():
                if self.element_in(after) and self._wanted(after):
                    self.out.append("\n")
                    self._other(after)
        return "".join(self.out).encode("utf-8")

    def _wanted(self, node: _Element) -> bool:
        is_comment = node.tag.__name__ == "Comment"
        return not is_comment or (self.method.comments and self.nodes.comments)

    def _other(self, node: _Element) -> bool:
        """A comment or PI; whether it was written."""
        if not self.element_in(node) or not self._wanted(node):
            return False
        name = node.tag.__name__
        if name == "Comment":
            self.out.append(f"<!--{node.text or ''}-->")
        elif name == "ProcessingInstruction":
            data = node.text
            self.out.append(f"<?{node.target} {data}?>" if data else f"<?{node.target}?>")
        else:
            return False  # an entity reference: none survive the parser's rules
        return True

    def _element(
        self, el: _Element, rendered: dict[str | None, str], *, parent_in: bool, skip: set[int]
    ) -> None:
        subset = self.nodes.members is not None
        inside = not subset or self.element_in(el)
        out = self.out
        if inside:
            qname = _qname(el)
            rendered = self._start_tag(el, qname, rendered, parent_in=parent_in)
        text = el.text
        if text is not None and (not subset or self.key_in((el, 0))):
            out.append(escape_text(text))
        for child in el:
            if id(child) not in skip:
                if isinstance(child.tag, str):
                    self._element(child, rendered, parent_in=inside, skip=skip)
                else:
                    self._other(child)
            tail = child.tail
            if tail is not None and (not subset or self.key_in((child, 1))):
                out.append(escape_text(tail))
        if inside:
            out.append(f"</{qname}>")

    def _start_tag(
        self, el: _Element, qname: str, rendered: dict[str | None, str], *, parent_in: bool
    ) -> dict[str | None, str]:
        """Write the start tag of ``el``; the namespaces rendered in scope after it."""
        scope = el.nsmap
        method = self.method
        attrs = list(el.attrib.items())
        if self.nodes.members is not None:
            attrs = [(name, value) for name, value in attrs if self.key_in((el, name))]
        if not method.exclusive and not parent_in:
            inherited = self._inherited_xml_attributes(el)
            attrs = [(n, v) for n, v in attrs if n not in inherited] + list(inherited.items())
        if method.exclusive:
            used: set[str | None] = {el.prefix}
            used.update(_prefix_of(el, name) for name, _ in attrs if name[0] == "{")
            used.discard("xml")
            for p in method.prefixes:
                used.add(None if p == "#default" else p)
            wanted = {p: scope.get(p, "") for p in used if p in scope or p is None}
        else:
            wanted = scope
            if None not in wanted:
                wanted = {**scope, None: ""}
        declare: dict[str | None, str] = {}
        for prefix, uri in wanted.items():
            if rendered.get(prefix, "" if prefix is None else None) != uri:
                declare[prefix] = uri
        parts = [f"<{qname}"]
        if declare:
            rendered = {**rendered, **declare}
            for prefix in sorted(declare, key=lambda p: "" if p is None else p):
                name = "xmlns" if prefix is None else f"xmlns:{prefix}"
                parts.append(f' {name}="{escape_attribute(declare[prefix])}"')
        if attrs:
            keyed = []
            for name, value in attrs:
                if name[0] == "{":
                    ns, _, local = name[1:].partition("}")
                    keyed.append((ns, local, f"{_prefix_of(el, name)}:{local}", value))
                else:
                    keyed.append(("", name, name, value))
            keyed.sort()
            parts += [f' {qname_}="{escape_attribute(value)}"' for _, _, qname_, value in keyed]
        parts.append(">")
        self.out.append("".join(parts))
        return rendered

    def _inherited_xml_attributes(self, el: _Element) -> dict[str, str]:
        """xml:* attributes that inclusive C14N carries onto ``el`` when its parent
        is not in the node-set: the ancestors' nearest occurrences of those ``el``
        lacks (C14N 1.0: all; 1.1: xml:lang and xml:space), and for C14N 1.1 the
        xml:base of the omitted ancestors joined with ``el``'s own."""
        found: dict[str, str] = {}
        bases: list[str] = []
        omitted = True
        for anc in el.iterancestors():
            omitted = omitted and not self.ancestor_in(anc)
            for name, value in anc.attrib.items():
                if not name.startswith(_XML):
                    continue
                if self.method.v11 and name == _XML + "base":
                    if omitted:
                        bases.append(value)
                elif name in el.attrib or (self.method.v11 and name not in _SIMPLE_INHERITABLE):
                    continue
                else:
                    found.setdefault(name, value)
        if bases:
            base = ""
            for value in reversed(bases):
                base = urljoin(base, value) if base else value
            own = el.get(_XML + "base")
            found[_XML + "base"] = urljoin(base, own) if own else base
        return found


def _qname(el: _Element) -> str:
    local = el.tag.rpartition("}")[2]
    return f"{el.prefix}:{local}" if el.prefix else local


def _prefix_of(el: _Element, name: str) -> str:
    """The prefix of a namespaced attribute of ``el`` (lxml keeps only its URI)."""
    uri = name[1:].partition("}")[0]
    if uri == XML_NS:
        return "xml"
    prefixes = [p for p, u in el.nsmap.items() if u == uri and p]
    if len(prefixes) == 1:
        return str(prefixes[0])
    local = name.rpartition("}")[2]
    qualified = el.xpath("name(@*[namespace-uri() = $u and local-name() = $l])", u=uri, l=local)
    return str(qualified).partition(":")[0]
