"""Where a signature goes in a document and what it references, and the
ds:Signature element signkit writes (as text, with placeholders for the
digests and the value that the signing stages fill in)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signkit.errors import InputFormatError
from signkit.formats.xml.algorithms import DIGEST_URI, DS, SIGNATURE_URI
from signkit.formats.xml.c14n import escape_text, quote_attribute
from signkit.formats.xml.options import C14N, NCNAME, XmlDocOptions
from signkit.formats.xml.parse import XmlDocument
from signkit.formats.xml.references import ENVELOPED
from signkit.formats.xml.xades import SignedPropertiesSpec, signed_properties_xml

if TYPE_CHECKING:
    from lxml.etree import _Element

    from signkit.tokens.model import SignatureScheme


def _q(prefix: str, name: str) -> str:
    return f"{prefix}:{name}" if prefix else name


def tax_code_warning(
    root: _Element, opts: XmlDocOptions, tax_code: str | None, source: str
) -> str | None:
    """A warning when the document's tax code differs from the certificate's."""
    if not opts.tax_code_path:
        return None
    node, missing = by_path(root, opts.tax_code_path, source)
    doc_code = (node.text or "").strip() if node is not None and not missing else None
    if tax_code is None:
        return f"{source}: the signer certificate carries no MST: tax code to compare"
    if doc_code is None:
        return f"{source}: no {'/'.join(opts.tax_code_path)} to compare with the certificate's MST"
    if doc_code != tax_code:
        return (
            f"{source}: the certificate's MST:{tax_code} differs from "
            f"{'/'.join(opts.tax_code_path[-2:])} {doc_code}"
        )
    return None


def _local(el: _Element) -> str:
    return str(el.tag).rpartition("}")[2]


def by_path(root: _Element, path: Sequence[str], source: str) -> tuple[_Element | None, list[str]]:
    """Follow local names from the root: (deepest element found, names still missing)."""
    if not path or _local(root) != path[0]:
        return None, list(path)
    node = root
    for i, name in enumerate(path[1:], start=1):
        children = [c for c in node if isinstance(c.tag, str) and _local(c) == name]
        if len(children) > 1:
            raise InputFormatError(
                f"more than one {'/'.join(path[: i + 1])} element", subject=source
            )
        if not children:
            return node, list(path[i:])
        node = children[0]
    return node, []


def xpath_namespaces(root: _Element) -> dict[str, str]:
    """Prefixes an XPath may use: those the root element declares, and ``d``
    for its default namespace (XPath 1.0 has none) unless ``d`` is taken."""
    names = {prefix: uri for prefix, uri in root.nsmap.items() if prefix}
    default = root.nsmap.get(None)
    if default and "d" not in names:
        names["d"] = default
    return names


def find_parent(doc: XmlDocument, opts: XmlDocOptions) -> tuple[_Element, list[str]]:
    """The element the Signature goes into, and the wrappers still to create."""
    root = doc.root
    source = doc.source
    if opts.signature_parent is not None:
        from lxml import etree

        try:
            found = doc.tree.xpath(opts.signature_parent, namespaces=xpath_namespaces(root))
        except etree.XPathError as exc:
            raise InputFormatError(
                f"cannot evaluate --signature-parent {opts.signature_parent} ({exc})",
                subject=source,
                hint="prefixes: those the root element declares; d: is its default namespace",
            ) from None
        hits = (
            [h for h in found if isinstance(getattr(h, "tag", None), str)]
            if isinstance(found, list)
            else []
        )
        if not hits:
            raise InputFormatError(
                f"no element matches the signature parent {opts.signature_parent}",
                subject=source,
            )
        if len(hits) > 1:
            raise InputFormatError(
                f"{len(hits)} elements match the signature parent {opts.signature_parent}",
                subject=source,
            )
        return hits[0], []
    if opts.parent_path:
        node, missing = by_path(root, opts.parent_path, source)
        if node is None:
            raise InputFormatError(
                f"the root element is not {opts.parent_path[0]} (wrong layout for this preset?)",
                subject=source,
            )
        if missing and not opts.create_parent:
            raise InputFormatError(
                f"no {'/'.join(opts.parent_path)} element for the signature", subject=source
            )
        return node, missing
    return root, []


def reference_fragment(
    doc: XmlDocument, opts: XmlDocOptions, ids: Mapping[str, list[_Element]]
) -> str:
    """The fragment of the data reference ('' or '#id'), after checking the Id is unique."""
    source = doc.source
    ref = opts.reference
    if ref is None and opts.reference_path:
        node, missing = by_path(doc.root, opts.reference_path, source)
        if node is None or missing:
            raise InputFormatError(
                f"no {'/'.join(opts.reference_path)} element to sign", subject=source
            )
        values = [v for a in opts.id_attributes if (v := node.get(a))]
        if not values:
            raise InputFormatError(
                f"{'/'.join(opts.reference_path)} has no {'/'.join(opts.id_attributes)} "
                "attribute to reference",
                subject=source,
            )
        ref = values[0]
    if ref is None:
        return ""
    hits = ids.get(ref, [])
    if not hits:
        raise InputFormatError(
            f'no element with {"/".join(opts.id_attributes)}="{ref}"', subject=source
        )
    if len(hits) > 1:
        raise InputFormatError(
            f'duplicate Id "{ref}" ({len(hits)} elements): refusing an ambiguous reference',
            subject=source,
        )
    if not NCNAME.fullmatch(ref):
        # A reference '#id' names an XML ID, which is a name: verifiers find no other.
        raise InputFormatError(
            f'the Id "{ref}" is not an XML name (letters, digits, ".", "-", "_", not '
            "starting with a digit): no verifier can resolve a reference to it",
            subject=source,
        )
    return "#" + ref


@dataclass(frozen=True)
class ReferenceSpec:
    """One Reference signkit writes."""

    uri: str
    """Its URI."""
    type: str | None
    """Its Type attribute."""
    transforms: tuple[str, ...]
    """'enveloped' and/or 'c14n'."""
    id: str | None
    """Its Id attribute."""


@dataclass(frozen=True, kw_only=True)
class SignatureSpec:
    """Everything the Signature element is made of, but the digests and the value."""

    opts: XmlDocOptions
    """The document's options."""
    signature_id: str
    """The Signature's Id."""
    nonce: str
    """Unique text of the placeholders."""
    references: tuple[ReferenceSpec, ...]
    """The references, in order."""
    scheme: SignatureScheme
    """pkcs1v15, pss or ecdsa."""
    digest_algorithm: str
    """hashlib name."""
    certificate_der: bytes
    """The signer certificate."""
    chain_der: tuple[bytes, ...]
    """Intermediates for KeyInfo."""
    signing_time_local: str
    """The e-invoice SigningTime object's text (local time, no offset)."""
    signing_time: str
    """XAdES SigningTime (with offset)."""
    enveloping_marker: str | None
    """Placeholder of the enveloped data in the enveloping form's Object."""


def signature_template(spec: SignatureSpec) -> str:
    """The Signature element as text with placeholders ``signkit-<nonce>-d<i>``
    for the digests and ``signkit-<nonce>-value`` for the value."""
    opts = spec.opts
    p = opts.ds_prefix
    sig_id = spec.signature_id
    c14n_uri = C14N[opts.c14n]
    ns_decl = f' xmlns:{p}="{DS}"' if p else f' xmlns="{DS}"'
    parts = [f"<{_q(p, 'Signature')}{ns_decl} Id={quote_attribute(sig_id)}>"]
    parts.append(f"<{_q(p, 'SignedInfo')}>")
    parts.append(f'<{_q(p, "CanonicalizationMethod")} Algorithm="{c14n_uri}"/>')
    parts.append(
        f"<{_q(p, 'SignatureMethod')} "
        f'Algorithm="{SIGNATURE_URI[(spec.scheme, spec.digest_algorithm)]}"/>'
    )
    for i, ref in enumerate(spec.references):
        attrs = ""
        if ref.id is not None:
            attrs += f" Id={quote_attribute(ref.id)}"
        if ref.type is not None:
            attrs += f" Type={quote_attribute(ref.type)}"
        parts.append(f"<{_q(p, 'Reference')}{attrs} URI={quote_attribute(ref.uri)}>")
        if ref.transforms:
            parts.append(f"<{_q(p, 'Transforms')}>")
            for t in ref.transforms:
                algo = ENVELOPED if t == "enveloped" else c14n_uri
                parts.append(f'<{_q(p, "Transform")} Algorithm="{algo}"/>')
            parts.append(f"</{_q(p, 'Transforms')}>")
        parts.append(
            f'<{_q(p, "DigestMethod")} Algorithm="{DIGEST_URI[spec.digest_algorithm]}"/>'
            f"<{_q(p, 'DigestValue')}>signkit-{spec.nonce}-d{i}</{_q(p, 'DigestValue')}>"
            f"</{_q(p, 'Reference')}>"
        )
    parts.append(f"</{_q(p, 'SignedInfo')}>")
    parts.append(
        f"<{_q(p, 'SignatureValue')} Id={quote_attribute(sig_id + '-value')}>"
        f"signkit-{spec.nonce}-value</{_q(p, 'SignatureValue')}>"
    )
    parts.append(_key_info(spec))
    if opts.signing_time_object:
        parts.append(
            f"<{_q(p, 'Object')} Id={quote_attribute('SigningTime-' + sig_id)}>"
            f"<{_q(p, 'SignatureProperties')}>"
            f"<{_q(p, 'SignatureProperty')} Target={quote_attribute('#' + sig_id)}>"
            f"<{_q(p, 'SigningTime')}>{spec.signing_time_local}</{_q(p, 'SigningTime')}>"
            f"</{_q(p, 'SignatureProperty')}></{_q(p, 'SignatureProperties')}></{_q(p, 'Object')}>"
        )
    if opts.level != "plain":
        parts.append(f"<{_q(p, 'Object')}>")
        parts.append(
            signed_properties_xml(
                SignedPropertiesSpec(
                    signature_id=sig_id,
                    ds_prefix=p,
                    certificate_der=spec.certificate_der,
                    digest_algorithm=spec.digest_algorithm,
                    signing_time=spec.signing_time,
                    signer_role=opts.signer_role,
                    data_object_format=opts.data_object_format,
                )
            )
        )
        parts.append(f"</{_q(p, 'Object')}>")
    if spec.enveloping_marker is not None:
        parts.append(
            f"<{_q(p, 'Object')} Id={quote_attribute(sig_id + '-object')}>{spec.enveloping_marker}"
            f"</{_q(p, 'Object')}>"
        )
    parts.append(f"</{_q(p, 'Signature')}>")
    return "".join(parts)


def _key_info(spec: SignatureSpec) -> str:
    from cryptography import x509

    p = spec.opts.ds_prefix
    parts = [f"<{_q(p, 'KeyInfo')}><{_q(p, 'X509Data')}>"]
    if "subject-name" in spec.opts.key_info:
        subject = x509.load_der_x509_certificate(spec.certificate_der).subject.rfc4514_string()
        parts.append(
            f"<{_q(p, 'X509SubjectName')}>{escape_text(subject)}</{_q(p, 'X509SubjectName')}>"
        )
    if "certificate" in spec.opts.key_info or "chain" in spec.opts.key_info:
        certs = [spec.certificate_der] + (
            list(spec.chain_der) if "chain" in spec.opts.key_info else []
        )
        for der in certs:
            encoded = base64.b64encode(der).decode("ascii")
            parts.append(f"<{_q(p, 'X509Certificate')}>{encoded}</{_q(p, 'X509Certificate')}>")
    parts.append(f"</{_q(p, 'X509Data')}></{_q(p, 'KeyInfo')}>")
    return "".join(parts)
