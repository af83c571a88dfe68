"""What a signature covers, by position and namespace, and the signs that the
element a reference names is not the one a reader is shown (signature
wrapping). ``verify`` reports the labels and fails the signature on a problem.

Labels: ``entire-document``, ``element:NAME#ID (/path)`` (with its namespace),
``file:NAME`` and ``element:NAME#ID (in FILE)`` for detached data, ``the
ds:Object #ID, enveloping``, ``signature's own KeyInfo`` (and the like).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signkit.formats.xml import xades
from signkit.formats.xml.core import CoreResult, ReferenceCheck, ds
from signkit.formats.xml.parse import XmlDocument
from signkit.formats.xml.references import XPOINTER_ID

if TYPE_CHECKING:
    from lxml.etree import _Element

_TYPED_TARGETS = {
    "http://www.w3.org/2000/09/xmldsig#Object": ds("Object"),
    "http://www.w3.org/2000/09/xmldsig#Manifest": ds("Manifest"),
    "http://www.w3.org/2000/09/xmldsig#SignatureProperties": ds("SignatureProperties"),
}
_OWN_PARTS = frozenset(
    (ds("KeyInfo"), ds("SignatureProperties"), ds("SignatureProperty"), ds("Manifest"))
)


def _own(signature: _Element, element: _Element) -> bool:
    """``element`` is inside ``signature`` itself (not in a nested counter-signature)."""
    for anc in element.iterancestors():
        if anc.tag == ds("Signature"):
            return anc is signature
    return False


def _inside_signature(element: _Element) -> bool:
    return any(a.tag == ds("Signature") for a in element.iterancestors())


def _is_own_part(signature: _Element, element: _Element) -> bool:
    """The signature's own key info, properties or manifest (not document data)."""
    if not _own(signature, element):
        return False
    chain = [element, *element.iterancestors()]
    for el in chain:
        if el is signature:
            return False
        if el.tag in _OWN_PARTS or xades.is_xades(el, "QualifyingProperties"):
            return True
        if (
            el.tag == ds("Object")
            and len(el)
            and all(
                isinstance(c.tag, str)
                and (c.tag in _OWN_PARTS or xades.is_xades(c, "QualifyingProperties"))
                for c in el
            )
        ):
            return True
    return False


def label(ref: ReferenceCheck, signature: _Element, doc: XmlDocument) -> str | None:
    target = ref.target
    assert target is not None  # noqa: S101 - callers check
    el = target.element
    if target.external is not None:
        if el is None:
            return f"file:{target.external}"
        fragment = (ref.uri or "").partition("#")[2]
        return f"element:{_local(el)}#{fragment} (in {target.external})"
    if el is None:
        return None
    if ref.uri == "" or (el is doc.root and ref.uri == "#xpointer(/)"):
        filtered = any(
            t.get("Algorithm", "").endswith(("xpath-19991116", "xmldsig-filter2"))
            for t in ref.element.iterfind(f"{ds('Transforms')}/{ds('Transform')}")
        )
        return "entire-document" + (" (XPath-filtered)" if filtered else "")
    if ref.type in xades.SIGNED_PROPERTIES_TYPES or xades.is_xades(el, "SignedProperties"):
        return None
    if el.tag == ds("SignatureValue") and _inside_signature(el) and not _own(signature, el):
        parent = next(a for a in el.iterancestors() if a.tag == ds("Signature"))
        return f"the SignatureValue of signature #{parent.get('Id') or '?'} (counter-signature)"
    if _is_own_part(signature, el):
        return f"signature's own {_local(el)}"
    if _own(signature, el):
        obj = (
            el
            if el.tag == ds("Object")
            else next((a for a in el.iterancestors() if a.tag == ds("Object")), None)
        )
        if obj is not None:
            return f"the ds:Object #{obj.get('Id') or (ref.uri or '#')[1:]}, enveloping"
        return f"signature's own {_local(el)}"
    return _element_label(el, ref.uri)


def _local(el: _Element) -> str:
    return el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""


def _element_label(el: _Element, uri_ref: str | None) -> str:
    """element:NAME#ID (/path) [in namespace URI]; ID as the reference names it."""
    ident = XPOINTER_ID.sub(r"\2", (uri_ref or "").partition("#")[2]) or None
    uri = el.tag[1:].partition("}")[0] if el.tag.startswith("{") else ""
    where = _position(el)
    label = f"element:{_local(el)}" + (f"#{ident}" if ident else "") + f" ({where})"
    return label + (f" in namespace {uri}" if uri else "")


def _position(el: _Element) -> str:
    """/a/b[2]/c: local names from the root, with the position among same-named siblings."""
    steps = []
    node: _Element | None = el
    while node is not None:
        parent = node.getparent()
        name = _local(node)
        if parent is not None:
            same = [c for c in parent if _local(c) == name]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def wrapping(ref: ReferenceCheck, signature: _Element, doc: XmlDocument) -> str | None:
    """Why the element a reference names is not what the document presents, if so."""
    target = ref.target
    assert target is not None  # noqa: S101 - callers check
    el = target.element
    if target.external is not None or el is None or el is doc.root:
        return None
    wanted = _TYPED_TARGETS.get(ref.type or "")
    if wanted is not None and el.tag != wanted and not _inside_signature(el):
        # Typed as a part of the signature, it names document content: what a
        # reader is shown as signed is not what the Type says.
        return (
            f"the reference {ref.uri} is typed {ref.type.rpartition('#')[2]} but names a "  # type: ignore[union-attr]
            f"<{_local(el)}> at {_position(el)}"
        )
    if ref.type in xades.SIGNED_PROPERTIES_TYPES or xades.is_xades(el, "SignedProperties"):
        return None if _own(signature, el) else "the signed properties belong to another signature"
    if _is_own_part(signature, el):
        return None
    if _inside_signature(el) and not _own(signature, el):
        if el.tag == ds("SignatureValue"):
            return None  # a counter-signature's subject: judged by _counter_signature
        return "the signed element is hidden inside another signature"
    name = _local(el)
    for other in doc.root.iter():
        if (
            other is el
            or not isinstance(other.tag, str)
            or _local(other) != name
            or _inside_signature(other)
            or el in other.iterancestors()
        ):
            continue
        ns = _ns(other)
        return (
            f"the document presents another <{name}>"
            + (f" in namespace {ns or '(none)'}" if ns != _ns(el) else "")
            + f" at {_position(other)}, which a reader could take for the signed one at "
            f"{_position(el)}"
        )
    return None


def _ns(el: _Element) -> str:
    return el.tag[1:].partition("}")[0] if el.tag.startswith("{") else ""


def counter_signature_problem(core: CoreResult, signature: _Element) -> str | None:
    """Why a XAdES counter-signature does not sign the SignatureValue of the
    signature it sits in (None when it does, or ``signature`` is not one)."""
    holder = signature.getparent()
    if holder is None or not xades.is_xades(holder, "CounterSignature"):
        return None
    parent = next((a for a in holder.iterancestors() if a.tag == ds("Signature")), None)
    value = parent.find(ds("SignatureValue")) if parent is not None else None
    if value is not None and any(
        r.matches and r.target is not None and r.target.element is value for r in core.references
    ):
        return None
    return (
        "a counter-signature that does not sign the SignatureValue of the signature it "
        "counter-signs"
    )
