"""XMLDSig and XAdES (B-B, B-T) signing, split into the engine's stages.

``prepare`` (worker): parse the document safely, splice a Signature template
into the ORIGINAL bytes, parse that result, compute the reference digests and
the canonical SignedInfo in the signature's final context. ``sign`` (main
process, the token): sign the canonical SignedInfo. ``finish`` (worker): put
the signature value (and for B-T the SignatureTimeStamp) into the bytes,
write and fsync the temp file, and verify what was written.

The document is never re-serialised: every byte outside the inserted
Signature (and the wrappers a preset creates for it) stays as it was.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr
from zoneinfo import ZoneInfo

from signkit.errors import DocumentError, InputFormatError, OutputError, SignkitError, UsageError
from signkit.formats import xml_parse
from signkit.formats.finished import Finished
from signkit.formats.plugin import OutputState
from signkit.fsio import open_regular
from signkit.pki.timestamps import TsaSpec, request_timestamp
from signkit.tokens.model import SignatureScheme

EXTENSIONS = (".xml",)
LEVELS = ("plain", "B-B", "B-T", "B-LT")
TIMESTAMPED = ("B-T", "B-LT")
FORMS = ("enveloped", "enveloping", "detached")

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
ENVELOPED = DS + "enveloped-signature"
C14N = {
    "inclusive": "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "exclusive": "http://www.w3.org/2001/10/xml-exc-c14n#",
}
C14N_BY_URI = {uri: name for name, uri in C14N.items()}
DIGEST_URI = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha384": "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
}
DIGEST_BY_URI = {uri: name for name, uri in DIGEST_URI.items()}
# RFC 6931: RSA-PSS with MGF1 over the same hash and a salt as long as the
# hash needs no RSAPSSParams element.
SIGNATURE_URI: dict[tuple[str, str], str] = {
    ("pkcs1v15", "sha256"): "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    ("pkcs1v15", "sha384"): "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    ("pkcs1v15", "sha512"): "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    ("pss", "sha256"): "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    ("pss", "sha384"): "http://www.w3.org/2007/05/xmldsig-more#sha384-rsa-MGF1",
    ("pss", "sha512"): "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
    ("ecdsa", "sha256"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    ("ecdsa", "sha384"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    ("ecdsa", "sha512"): "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
}
SIGNATURE_BY_URI = {uri: pair for pair, uri in SIGNATURE_URI.items()}
TRANSFORMS = ("enveloped", "c14n")
KEY_INFO = ("subject-name", "certificate", "chain")
# A new temp file only: never an existing file, never through a symlink.
_CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_LOCAL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")


@dataclass(frozen=True, kw_only=True)
class XmlDocOptions:
    """Per-document signature settings (presets and the command line fill them)."""

    level: str = "plain"
    """'plain' XMLDSig, or XAdES 'B-B' / 'B-T'."""
    form: str = "enveloped"
    """enveloped, enveloping or detached."""
    reference: str | None = None
    """Sign the element with this Id (default: the whole document)."""
    reference_path: tuple[str, ...] = ()
    """Sign the element at this path of local names (its Id attribute is referenced)."""
    id_attributes: tuple[str, ...] = ("Id",)
    """Attribute names that carry element Ids."""
    signature_parent: str | None = None
    """XPath of the element the Signature is appended to (default: the root)."""
    parent_path: tuple[str, ...] = ()
    """Path of local names of the Signature's parent (a preset's way)."""
    create_parent: bool = False
    """Create the missing end of ``parent_path``."""
    signature_id: str | None = None
    """Id of the Signature element (default: a random one)."""
    c14n: str = "inclusive"
    """Canonicalisation of SignedInfo and of references."""
    transforms: tuple[str, ...] = ()
    """Transforms of the data reference (empty: what the form needs)."""
    signing_time_object: bool = False
    """Add an Object with SignatureProperties/SigningTime, referenced."""
    key_info: tuple[str, ...] = ("certificate", "chain")
    """What KeyInfo/X509Data carries: subject-name, certificate, chain."""
    ds_prefix: str = "ds"
    """Namespace prefix of the XMLDSig elements ('' = default namespace)."""
    tax_code_path: tuple[str, ...] = ()
    """Element whose text must equal the certificate's MST: tax code (warning)."""
    signer_role: str | None = None
    """XAdES claimed signer role."""
    data_object_format: str | None = None
    """XAdES DataObjectFormat MIME type of the signed data."""


# Manifest columns (long option names or field names).
MANIFEST_FIELDS = ("level", "reference", "signature_id", "signer_role", "data_object_format")
OVERRIDABLE = frozenset(MANIFEST_FIELDS) | frozenset(f.replace("_", "-") for f in MANIFEST_FIELDS)
_TUPLE_FIELDS = frozenset(
    ("reference_path", "id_attributes", "parent_path", "transforms", "key_info", "tax_code_path")
)


def apply_settings(base: XmlDocOptions, values: Mapping[str, Any], source: str) -> XmlDocOptions:
    """``base`` with ``values`` (a preset table or manifest row) applied and checked."""
    known = {f.name for f in fields(XmlDocOptions)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise UsageError(f"unknown setting '{key}'", subject=source)
        if name in _TUPLE_FIELDS:
            if isinstance(value, str):
                value = tuple(p for p in value.split("/") if p) if "path" in name else (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"'{key}' must be a list of names", subject=source)
            value = tuple(value)
        elif name in ("create_parent", "signing_time_object"):
            if not isinstance(value, bool):
                raise UsageError(f"'{key}' must be true or false", subject=source)
        elif value is not None and not isinstance(value, str):
            raise UsageError(f"'{key}' must be text", subject=source)
        changes[name] = value
    return validate(replace(base, **changes))


def validate(opts: XmlDocOptions) -> XmlDocOptions:
    """Refuse contradictory or malformed settings before any document is read."""
    if opts.level not in LEVELS:
        raise UsageError(f"level must be one of {', '.join(LEVELS)}", subject=opts.level)
    if opts.form not in FORMS:
        raise UsageError(f"form must be one of {', '.join(FORMS)}", subject=opts.form)
    if opts.c14n not in C14N:
        raise UsageError("c14n must be 'inclusive' or 'exclusive'", subject=opts.c14n)
    for t in opts.transforms:
        if t not in TRANSFORMS:
            raise UsageError(f"transforms are {', '.join(TRANSFORMS)}", subject=t)
    for k in opts.key_info:
        if k not in KEY_INFO:
            raise UsageError(f"key_info items are {', '.join(KEY_INFO)}", subject=k)
    for path in (opts.parent_path, opts.reference_path, opts.tax_code_path):
        for name in path:
            if not _LOCAL_NAME.match(name):
                raise UsageError("paths are element local names", subject=name)
    for name in opts.id_attributes:
        if not _LOCAL_NAME.match(name):
            raise UsageError("not an attribute name", subject=name)
    if opts.signature_id is not None and not _NCNAME.match(opts.signature_id):
        raise UsageError("--signature-id must be an XML name (NCName)", subject=opts.signature_id)
    if opts.reference is not None and not _NCNAME.match(opts.reference):
        raise UsageError("--reference takes an Id value (an XML name)", subject=opts.reference)
    if opts.ds_prefix and not _NCNAME.match(opts.ds_prefix):
        raise UsageError("ds_prefix must be an XML name", subject=opts.ds_prefix)
    if opts.signature_parent is not None:
        from lxml import etree

        try:
            etree.XPath(opts.signature_parent)
        except etree.XPathSyntaxError:
            raise UsageError(
                "--signature-parent is not a valid XPath", subject=opts.signature_parent
            ) from None
    if opts.form != "enveloped" and (opts.signature_parent or opts.parent_path):
        raise UsageError("a signature parent only applies to the enveloped form")
    if opts.data_object_format is not None and opts.level == "plain":
        raise UsageError("--data-object-format is a XAdES property (use --level B-B or B-T)")
    if opts.signer_role is not None and opts.level == "plain":
        raise UsageError("--signer-role is a XAdES property (use --level B-B or B-T)")
    return opts


def resolve_options(defaults: XmlDocOptions, overrides: Mapping[str, str]) -> XmlDocOptions:
    """Apply a manifest row's overrides to the batch defaults (validated already)."""
    if not overrides:
        return defaults
    return apply_settings(defaults, dict(overrides), "manifest")


@dataclass(frozen=True, kw_only=True)
class XmlBatchConfig:
    """What every worker needs, the same for the whole batch (picklable, no secrets)."""

    signer_der: bytes
    chain_der: tuple[bytes, ...]
    key_type: str
    key_size: int
    digest_algorithm: str
    scheme: SignatureScheme
    tsa: TsaSpec | None
    timezone: str = "Asia/Ho_Chi_Minh"
    tax_code: str | None = None
    """The MST: tax code in the signer's subject, if any."""
    ltv_certs: tuple[bytes, ...] = ()
    """B-LT: certificates of the signer's and the TSA's chains (DER)."""
    ltv_ocsps: tuple[bytes, ...] = ()
    """B-LT: OCSP responses for them (DER)."""
    ltv_crls: tuple[bytes, ...] = ()
    """B-LT: CRLs for them (DER)."""


@dataclass(frozen=True)
class PrepareItem:
    """One document handed to a worker."""

    index: int
    input: str
    output: str
    temp: str
    options: XmlDocOptions
    config: XmlBatchConfig


@dataclass(frozen=True)
class Prepared:
    """A document with its Signature laid out, waiting for the signature value."""

    config: XmlBatchConfig
    index: int
    input: str
    temp: str
    to_sign: bytes
    head: bytes
    """Output bytes before the SignatureValue text."""
    middle: bytes
    """Output bytes from the SignatureValue text to where unsigned properties go."""
    tail: bytes
    """The rest of the output."""
    value_c14n: tuple[bytes, bytes]
    """Canonical SignatureValue element around its text (the B-T time-stamp input)."""
    signature_id: str
    ds_prefix: str
    id_attributes: tuple[str, ...]
    sha256_before: str
    signing_time: str
    level: str
    warnings: tuple[str, ...] = ()
    size_before: int | None = None


def worker_warmup() -> None:
    """Import the XML stack ahead of the first document."""
    import lxml.etree  # noqa: F401


# ---------------------------------------------------------------- canonical forms


def c14n(element: Any, method: str) -> bytes:
    """Canonical form of ``element`` where it stands in its document.

    lxml's own subtree canonicalisation mishandles a default namespace
    declared above the subtree (it emits ``xmlns=""`` two levels down), and
    drops the ancestors' xml:* attributes that inclusive C14N 1.0 carries
    onto the apex. So the subtree is serialised with every in-scope
    namespace declared on it (and those xml:* attributes), re-parsed as a
    document of its own, and that document is canonicalised.
    """
    from lxml import etree

    exclusive = method == "exclusive"
    added: list[str] = []
    if not exclusive:
        parent = element.getparent()
        while parent is not None:
            for name, value in parent.attrib.items():
                if name.startswith("{" + XML_NS + "}") and element.get(name) is None:
                    element.set(name, value)
                    added.append(name)
            parent = parent.getparent()
    try:
        standalone = etree.fromstring(etree.tostring(element), xml_parse.parser())
    finally:
        for name in added:
            del element.attrib[name]
    return _document_c14n(standalone.getroottree(), method)


def _document_c14n(tree: Any, method: str) -> bytes:
    from lxml import etree

    return bytes(
        etree.tostring(tree, method="c14n", exclusive=method == "exclusive", with_comments=False)
    )


def _q(prefix: str, name: str) -> str:
    return f"{prefix}:{name}" if prefix else name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def id_index(root: Any, id_attributes: Sequence[str]) -> dict[str, list[Any]]:
    """Every Id value of the document and the elements that carry it (``xml:id``
    is an ID wherever it appears, as the xml:id recommendation says)."""
    index: dict[str, list[Any]] = {}
    for value in _id_values((*dict.fromkeys(id_attributes), "xml:id"))(root):
        el = value.getparent()
        hits = index.setdefault(str(value), [])
        if not any(h is el for h in hits):
            hits.append(el)
    return index


@functools.lru_cache(maxsize=32)
def _id_values(names: tuple[str, ...]) -> Any:
    """One compiled XPath for every value of these attributes, in document
    order (names are checked NCNames, see validate, so the expression is fixed;
    selecting the attributes is ~4x faster than the elements that carry them)."""
    from lxml import etree

    return etree.XPath(" | ".join(f"//@{name}" for name in names))


def _by_path(root: Any, path: Sequence[str], source: str) -> tuple[Any, list[str]]:
    """Follow local names from the root: (deepest element found, names still missing)."""
    from lxml import etree

    if not path or etree.QName(root).localname != path[0]:
        return None, list(path)
    node = root
    for i, name in enumerate(path[1:], start=1):
        children = [
            c for c in node.iterchildren(tag=etree.Element) if etree.QName(c).localname == name
        ]
        if len(children) > 1:
            raise InputFormatError(
                f"more than one {'/'.join(path[: i + 1])} element", subject=source
            )
        if not children:
            return node, list(path[i:])
        node = children[0]
    return node, []


# ---------------------------------------------------------------- prepare


def _tax_code_warning(
    root: Any, opts: XmlDocOptions, cfg: XmlBatchConfig, source: str
) -> str | None:
    if not opts.tax_code_path:
        return None
    node, missing = _by_path(root, opts.tax_code_path, source)
    doc_code = (node.text or "").strip() if node is not None and not missing else None
    if cfg.tax_code is None:
        return f"{source}: the signer certificate carries no MST: tax code to compare"
    if doc_code is None:
        return f"{source}: no {'/'.join(opts.tax_code_path)} to compare with the certificate's MST"
    if doc_code != cfg.tax_code:
        return (
            f"{source}: the certificate's MST:{cfg.tax_code} differs from "
            f"{'/'.join(opts.tax_code_path[-2:])} {doc_code}"
        )
    return None


def _signature_template(
    *,
    opts: XmlDocOptions,
    cfg: XmlBatchConfig,
    sig_id: str,
    nonce: str,
    references: list[tuple[str, str | None, tuple[str, ...], str | None]],
    signing_time_local: str,
    signing_time: str,
    enveloping_marker: str | None,
) -> str:
    """The Signature element as text with placeholders for digests and the value.

    ``references``: (URI, Type, transforms, Id) of each reference, in order.
    """
    p = opts.ds_prefix
    ns_decl = f' xmlns:{p}="{DS}"' if p else f' xmlns="{DS}"'
    c14n_uri = C14N[opts.c14n]
    parts = [f"<{_q(p, 'Signature')}{ns_decl} Id={quoteattr(sig_id)}>"]
    parts.append(f"<{_q(p, 'SignedInfo')}>")
    parts.append(f'<{_q(p, "CanonicalizationMethod")} Algorithm="{c14n_uri}"/>')
    parts.append(
        f"<{_q(p, 'SignatureMethod')} "
        f'Algorithm="{SIGNATURE_URI[(cfg.scheme, cfg.digest_algorithm)]}"/>'
    )
    for i, (uri, rtype, transforms, ref_id) in enumerate(references):
        attrs = ""
        if ref_id is not None:
            attrs += f" Id={quoteattr(ref_id)}"
        if rtype is not None:
            attrs += f" Type={quoteattr(rtype)}"
        parts.append(f"<{_q(p, 'Reference')}{attrs} URI={quoteattr(uri)}>")
        if transforms:
            parts.append(f"<{_q(p, 'Transforms')}>")
            for t in transforms:
                algo = ENVELOPED if t == "enveloped" else c14n_uri
                parts.append(f'<{_q(p, "Transform")} Algorithm="{algo}"/>')
            parts.append(f"</{_q(p, 'Transforms')}>")
        parts.append(
            f'<{_q(p, "DigestMethod")} Algorithm="{DIGEST_URI[cfg.digest_algorithm]}"/>'
            f"<{_q(p, 'DigestValue')}>signkit-{nonce}-d{i}</{_q(p, 'DigestValue')}>"
            f"</{_q(p, 'Reference')}>"
        )
    parts.append(f"</{_q(p, 'SignedInfo')}>")
    parts.append(
        f"<{_q(p, 'SignatureValue')} Id={quoteattr(sig_id + '-value')}>"
        f"signkit-{nonce}-value</{_q(p, 'SignatureValue')}>"
    )
    parts.append(f"<{_q(p, 'KeyInfo')}><{_q(p, 'X509Data')}>")
    if "subject-name" in opts.key_info:
        parts.append(
            f"<{_q(p, 'X509SubjectName')}>{escape(_subject_name(cfg.signer_der))}"
            f"</{_q(p, 'X509SubjectName')}>"
        )
    if "certificate" in opts.key_info or "chain" in opts.key_info:
        certs = [cfg.signer_der] + (list(cfg.chain_der) if "chain" in opts.key_info else [])
        for der in certs:
            parts.append(f"<{_q(p, 'X509Certificate')}>{_b64(der)}</{_q(p, 'X509Certificate')}>")
    parts.append(f"</{_q(p, 'X509Data')}></{_q(p, 'KeyInfo')}>")
    if opts.signing_time_object:
        parts.append(
            f"<{_q(p, 'Object')} Id={quoteattr('SigningTime-' + sig_id)}>"
            f"<{_q(p, 'SignatureProperties')}>"
            f"<{_q(p, 'SignatureProperty')} Target={quoteattr('#' + sig_id)}>"
            f"<{_q(p, 'SigningTime')}>{signing_time_local}</{_q(p, 'SigningTime')}>"
            f"</{_q(p, 'SignatureProperty')}></{_q(p, 'SignatureProperties')}></{_q(p, 'Object')}>"
        )
    if opts.level != "plain":
        parts.append(f"<{_q(p, 'Object')}>")
        parts.append(_qualifying_properties(opts, cfg, sig_id, signing_time))
        parts.append(f"</{_q(p, 'Object')}>")
    if enveloping_marker is not None:
        parts.append(
            f"<{_q(p, 'Object')} Id={quoteattr(sig_id + '-object')}>{enveloping_marker}"
            f"</{_q(p, 'Object')}>"
        )
    parts.append(f"</{_q(p, 'Signature')}>")
    return "".join(parts)


def _qualifying_properties(
    opts: XmlDocOptions, cfg: XmlBatchConfig, sig_id: str, signing_time: str
) -> str:
    from asn1crypto import cms
    from asn1crypto import x509 as ax509

    p = opts.ds_prefix
    cert = ax509.Certificate.load(cfg.signer_der)
    issuer_serial = cms.IssuerSerial(
        {
            "issuer": [ax509.GeneralName(name="directory_name", value=cert.issuer)],
            "serial": cert.serial_number,
        }
    ).dump()
    cert_digest = hashlib.new(cfg.digest_algorithm, cfg.signer_der).digest()
    out = [
        f'<xades:QualifyingProperties xmlns:xades="{XADES}" Target={quoteattr("#" + sig_id)}>',
        f"<xades:SignedProperties Id={quoteattr(sig_id + '-signedprops')}>",
        "<xades:SignedSignatureProperties>",
        f"<xades:SigningTime>{signing_time}</xades:SigningTime>",
        "<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>",
        f'<{_q(p, "DigestMethod")} Algorithm="{DIGEST_URI[cfg.digest_algorithm]}"/>',
        f"<{_q(p, 'DigestValue')}>{_b64(cert_digest)}</{_q(p, 'DigestValue')}>",
        "</xades:CertDigest>",
        f"<xades:IssuerSerialV2>{_b64(issuer_serial)}</xades:IssuerSerialV2>",
        "</xades:Cert></xades:SigningCertificateV2>",
    ]
    if opts.signer_role:
        out.append(
            "<xades:SignerRoleV2><xades:ClaimedRoles><xades:ClaimedRole>"
            f"{escape(opts.signer_role)}"
            "</xades:ClaimedRole></xades:ClaimedRoles></xades:SignerRoleV2>"
        )
    out.append("</xades:SignedSignatureProperties>")
    if opts.data_object_format:
        out.append(
            "<xades:SignedDataObjectProperties>"
            f"<xades:DataObjectFormat ObjectReference={quoteattr('#' + sig_id + '-ref0')}>"
            f"<xades:MimeType>{escape(opts.data_object_format)}</xades:MimeType>"
            "</xades:DataObjectFormat></xades:SignedDataObjectProperties>"
        )
    out.append("</xades:SignedProperties></xades:QualifyingProperties>")
    return "".join(out)


def _subject_name(cert_der: bytes) -> str:
    from cryptography import x509

    return x509.load_der_x509_certificate(cert_der).subject.rfc4514_string()


def tax_code_of(cert_der: bytes) -> str | None:
    """The ``MST:<tax code>`` carried in a Vietnamese certificate's subject, if any."""
    from cryptography import x509

    for attr in x509.load_der_x509_certificate(cert_der).subject:
        value = attr.value if isinstance(attr.value, str) else ""
        m = re.search(r"MST:\s*([0-9A-Za-z-]+)", value)
        if m:
            return m.group(1)
    return None


def xpath_namespaces(root: Any) -> dict[str, str]:
    """Prefixes an XPath may use: those the root element declares, and ``d``
    for its default namespace (XPath 1.0 has none) unless ``d`` is taken."""
    names = {prefix: uri for prefix, uri in root.nsmap.items() if prefix}
    default = root.nsmap.get(None)
    if default and "d" not in names:
        names["d"] = default
    return names


def _find_parent(tree: Any, opts: XmlDocOptions, source: str) -> tuple[Any, list[str]]:
    root = tree.getroot()
    if opts.signature_parent is not None:
        try:
            found = tree.xpath(opts.signature_parent, namespaces=xpath_namespaces(root))
            hits = [h for h in found if hasattr(h, "tag")]
        except Exception as exc:
            raise InputFormatError(
                f"cannot evaluate --signature-parent {opts.signature_parent} ({exc})",
                subject=source,
                hint="prefixes: those the root element declares; d: is its default namespace",
            ) from None
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
        node, missing = _by_path(root, opts.parent_path, source)
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


def _reference_target(
    tree: Any, opts: XmlDocOptions, ids: Mapping[str, list[Any]], source: str
) -> str:
    """The URI of the data reference ('' or '#id'), after checking the Id is unique."""
    root = tree.getroot()
    ref = opts.reference
    if ref is None and opts.reference_path:
        node, missing = _by_path(root, opts.reference_path, source)
        if node is None or missing:
            raise InputFormatError(
                f"no {'/'.join(opts.reference_path)} element to sign", subject=source
            )
        values = [node.get(a) for a in opts.id_attributes if node.get(a)]
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
    return "#" + ref


def _raw_qname(data: bytes, span: xml_parse.ElementSpan) -> bytes:
    m = re.match(rb"<([^\s/>]+)", data[span.start : span.start_tag_end])
    assert m is not None  # noqa: S101 - the tokenizer matched a tag here
    return m.group(1)


def _splice(data: bytes, tree: Any, parent: Any, missing: list[str], signature: bytes) -> bytes:
    span = xml_parse.locate(data, xml_parse.element_index(tree, parent))
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


def _root_bytes(data: bytes, tree: Any) -> bytes:
    span = xml_parse.locate(data, 0)
    return data[span.start : span.after]


def _find_signature(root: Any, sig_id: str) -> Any:
    hits = [el for el in root.iter(f"{{{DS}}}Signature") if el.get("Id") == sig_id]
    if len(hits) != 1:
        raise DocumentError(f"{len(hits)} signatures with Id {sig_id}")
    return hits[0]


def _resolve_uri(
    root: Any,
    uri: str,
    ids: Mapping[str, list[Any]],
    base: Path | None,
    id_attributes: Sequence[str] = ("Id",),
) -> Any:
    """A same-document reference's element (or the document); an external
    file's bytes; or, for ``file#Id``, that element of the external file."""
    if uri == "" and root is not None:
        return root.getroottree()
    if uri.startswith("#"):
        return _by_id(ids, uri)
    if base is None or "://" in uri or uri.startswith("/") or ":" in uri.split("/", 1)[0]:
        raise DocumentError(f"reference {uri} is not a relative file reference")
    name, _, fragment = uri.partition("#")
    path = base / name
    try:
        if not path.is_file():
            raise DocumentError(f"the referenced file {name} is not a regular file")
        if path.stat().st_size > xml_parse.MAX_BYTES:
            # the same bound as for signing: a hostile signature cannot make us read gigabytes
            raise DocumentError(
                f"the referenced file {name} is over {xml_parse.MAX_BYTES >> 20} MiB"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read the referenced file {name} ({exc.strerror})") from None
    if not fragment:
        return data
    try:
        other = xml_parse.parse(data, name).getroot()
    except SignkitError as exc:
        raise DocumentError(f"the referenced file {name}: {exc.message}") from None
    return _by_id(id_index(other, (*id_attributes, "Id")), "#" + fragment, name)


def resolve_external(uri: str, base: Path, id_attributes: Sequence[str] = ("Id",)) -> Any:
    """A detached reference's data: the bytes of a file named relative to
    ``base``, or the element ``file#Id`` names (parsed safely). DocumentError
    when it cannot be had."""
    return _resolve_uri(None, uri, {}, base, id_attributes)


def _by_id(ids: Mapping[str, list[Any]], uri: str, where: str | None = None) -> Any:
    hits = ids.get(uri[1:], [])
    if len(hits) != 1:
        raise DocumentError(
            f"reference {uri} matches {len(hits)} elements"
            + (" (duplicate Ids)" if hits else "")
            + (f" in {where}" if where else "")
        )
    return hits[0]


def _digest_reference(
    target: Any, transforms: Sequence[str], signature: Any, digest_algorithm: str
) -> bytes:
    """Apply the transforms (enveloped-signature, C14N) and hash."""
    if isinstance(target, bytes):
        if transforms:
            raise DocumentError("transforms over external octets are not supported")
        return hashlib.new(digest_algorithm, target).digest()
    method = "inclusive"
    for t in transforms:
        if t in C14N_BY_URI:
            method = C14N_BY_URI[t]
        elif t != ENVELOPED:
            raise DocumentError(f"unsupported transform {t}")
    parent = signature.getparent() if ENVELOPED in transforms else None
    if parent is None:
        return hashlib.new(digest_algorithm, _canonical(target, method)).digest()
    # The enveloped-signature transform removes the element, not the text
    # after it (lxml moves an element's tail with it): hand the tail over.
    index = parent.index(signature)
    tail = signature.tail
    previous = signature.getprevious()
    saved = previous.tail if previous is not None else parent.text
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(signature)
    try:
        canonical = _canonical(target, method)
    finally:
        parent.insert(index, signature)
        signature.tail = tail
        if previous is not None:
            previous.tail = saved
        else:
            parent.text = saved
    return hashlib.new(digest_algorithm, canonical).digest()


def _canonical(target: Any, method: str) -> bytes:
    return _document_c14n(target, method) if hasattr(target, "getroot") else c14n(target, method)


def worker_prepare(item: PrepareItem) -> Prepared:
    """Stage 1 (worker): lay out the Signature and compute what the token signs."""
    try:
        with os.fdopen(open_regular(item.input), "rb") as fh:
            data = fh.read(xml_parse.MAX_BYTES + 1)
    except OSError as exc:
        raise InputFormatError(f"cannot read ({exc.strerror})", subject=item.input) from None
    return prepare_bytes(item, data)


def prepare_bytes(item: PrepareItem, data: bytes) -> Prepared:
    """``worker_prepare`` on bytes already read."""
    cfg = item.config
    opts = item.options
    source = item.input
    before = hashlib.sha256(data).hexdigest()
    tree = xml_parse.parse(data, source)
    root = tree.getroot()
    from lxml import etree

    for path in (opts.parent_path, opts.reference_path):
        if path and etree.QName(root).localname != path[0]:
            raise InputFormatError(
                f"the root element is {etree.QName(root).localname}, not {path[0]} "
                "(a document of another layout?)",
                subject=source,
            )
    warnings: list[str] = []
    warning = _tax_code_warning(root, opts, cfg, source)
    if warning:
        warnings.append(warning)
    zone = ZoneInfo(cfg.timezone)
    now = datetime.now(zone).replace(microsecond=0)
    nonce = secrets.token_hex(8)
    sig_id = opts.signature_id or f"sig-{nonce}"
    ids = id_index(root, (*opts.id_attributes, "Id"))
    for own in (sig_id, sig_id + "-value", sig_id + "-signedprops", "SigningTime-" + sig_id):
        if own in ids:
            raise InputFormatError(
                f'the document already has an element with Id "{own}"',
                subject=source,
                hint="choose another --signature-id",
            )
    references: list[tuple[str, str | None, tuple[str, ...], str | None]] = []
    xades = opts.level != "plain"
    data_ref_id = sig_id + "-ref0" if xades else None
    enveloping_marker = None
    detached_target: Any = data
    if opts.form == "detached":
        rel = os.path.relpath(
            os.path.abspath(source), os.path.dirname(os.path.abspath(item.output))
        )
        uri = "/".join(Path(rel).parts)
        fragment = _reference_target(tree, opts, ids, source)
        if fragment:
            # An element of the data document: canonicalised where it stands there.
            detached_target = ids[fragment[1:]][0]
            references.append((uri + fragment, None, ("c14n",), data_ref_id))
        else:
            references.append((uri, None, (), data_ref_id))
    elif opts.form == "enveloping":
        enveloping_marker = f"signkit-{nonce}-data"
        references.append(("#" + sig_id + "-object", None, ("c14n",), data_ref_id))
    else:
        uri = _reference_target(tree, opts, ids, source)
        transforms = opts.transforms or ("enveloped", "c14n")
        references.append((uri, None, transforms, data_ref_id))
    if opts.signing_time_object:
        references.append(("#SigningTime-" + sig_id, None, (), None))
    if xades:
        references.append(("#" + sig_id + "-signedprops", SIGNED_PROPERTIES_TYPE, ("c14n",), None))
    template = _signature_template(
        opts=opts,
        cfg=cfg,
        sig_id=sig_id,
        nonce=nonce,
        references=references,
        signing_time_local=now.replace(tzinfo=None).isoformat(),
        signing_time=now.isoformat(),
        enveloping_marker=enveloping_marker,
    ).encode("utf-8")
    if opts.form == "enveloped":
        parent, missing = _find_parent(tree, opts, source)
        out = _splice(data, tree, parent, missing, template)
    else:
        decl = b'<?xml version="1.0" encoding="UTF-8"?>\n'
        if enveloping_marker is not None:
            out = decl + template.replace(enveloping_marker.encode(), _root_bytes(data, tree))
        else:
            out = decl + template
    # Everything below works on the parse of the output itself, so the digests
    # and the canonical SignedInfo are those any verifier will compute.
    out_tree = xml_parse.parse(out, source)
    out_root = out_tree.getroot()
    signature = _find_signature(out_root, sig_id)
    p = opts.ds_prefix
    ns = {"d": DS}
    signed_info = signature.find("d:SignedInfo", ns)
    base = Path(os.path.abspath(item.output)).parent
    out_ids = id_index(out_root, (*opts.id_attributes, "Id"))
    for i, ref in enumerate(signed_info.findall("d:Reference", ns)):
        uri = ref.get("URI")
        algorithms = [t.get("Algorithm") for t in ref.findall("d:Transforms/d:Transform", ns)]
        target = (
            detached_target
            if opts.form == "detached" and i == 0
            else _resolve_uri(out_root, uri, out_ids, base)
        )
        value = _b64(_digest_reference(target, algorithms, signature, cfg.digest_algorithm))
        ref.find("d:DigestValue", ns).text = value
        marker = f">signkit-{nonce}-d{i}<".encode()
        if out.count(marker) != 1:
            raise DocumentError("the document contains signkit's placeholder text", subject=source)
        out = out.replace(marker, f">{value}<".encode())
    to_sign = c14n(signed_info, opts.c14n)
    value_marker = f"signkit-{nonce}-value".encode()
    value_el = signature.find("d:SignatureValue", ns)
    sv = c14n(value_el, opts.c14n)
    sv_head, _, sv_tail = sv.partition(value_marker)
    head, found, rest = out.partition(b">" + value_marker + b"<")
    if not found or value_marker in rest:
        raise DocumentError("the document contains signkit's placeholder text", subject=source)
    head += b">"
    rest = b"<" + rest
    # Unsigned properties go at the end of our QualifyingProperties: its first
    # closing tag after the SignatureValue (document content may follow).
    cut = rest.find(b"</xades:QualifyingProperties>") if xades else len(rest)
    return Prepared(
        config=cfg,
        index=item.index,
        input=source,
        temp=item.temp,
        to_sign=to_sign,
        head=head,
        middle=rest[:cut],
        tail=rest[cut:],
        value_c14n=(sv_head, sv_tail),
        signature_id=sig_id,
        ds_prefix=p,
        id_attributes=opts.id_attributes,
        sha256_before=before,
        signing_time=now.isoformat(),
        level=opts.level,
        warnings=tuple(warnings),
        size_before=len(data),
    )


# ---------------------------------------------------------------- finish


def signature_value(signature: bytes, cfg: XmlBatchConfig) -> bytes:
    """The token's signature as XMLDSig wants it (ECDSA: r||s, not DER)."""
    if cfg.key_type == "EC":
        from signkit.tokens.signer import ecdsa_der_to_raw

        return ecdsa_der_to_raw(signature, (cfg.key_size + 7) // 8)
    return signature


def unsigned_properties(
    prepared: Prepared,
    tokens: Sequence[bytes],
    c14n_uri: str,
    *,
    certs: Sequence[bytes] = (),
    ocsps: Sequence[bytes] = (),
    crls: Sequence[bytes] = (),
) -> bytes:
    """xades:UnsignedProperties: one SignatureTimeStamp per token (DER) and,
    for B-LT, the validation data: CertificateValues and RevocationValues."""
    p = prepared.ds_prefix
    sid = prepared.signature_id
    parts = [
        f"<xades:SignatureTimeStamp Id={quoteattr(f'{sid}-ts{i}')}>"
        f'<{_q(p, "CanonicalizationMethod")} Algorithm="{c14n_uri}"/>'
        f"<xades:EncapsulatedTimeStamp>{_b64(t)}</xades:EncapsulatedTimeStamp>"
        "</xades:SignatureTimeStamp>"
        for i, t in enumerate(tokens)
    ]
    if certs:
        parts.append(f"<xades:CertificateValues Id={quoteattr(sid + '-certs')}>")
        parts += [
            f"<xades:EncapsulatedX509Certificate>{_b64(c)}</xades:EncapsulatedX509Certificate>"
            for c in certs
        ]
        parts.append("</xades:CertificateValues>")
    if ocsps or crls:
        parts.append(f"<xades:RevocationValues Id={quoteattr(sid + '-revocation')}>")
        if crls:
            parts.append("<xades:CRLValues>")
            parts += [
                f"<xades:EncapsulatedCRLValue>{_b64(c)}</xades:EncapsulatedCRLValue>" for c in crls
            ]
            parts.append("</xades:CRLValues>")
        if ocsps:
            parts.append("<xades:OCSPValues>")
            parts += [
                f"<xades:EncapsulatedOCSPValue>{_b64(o)}</xades:EncapsulatedOCSPValue>"
                for o in ocsps
            ]
            parts.append("</xades:OCSPValues>")
        parts.append("</xades:RevocationValues>")
    return (
        "<xades:UnsignedProperties><xades:UnsignedSignatureProperties>"
        f"{''.join(parts)}</xades:UnsignedSignatureProperties></xades:UnsignedProperties>"
    ).encode()


def worker_finish(prepared: Prepared, signature: bytes) -> Finished:
    """Stage 3 (worker): signature value, time-stamp (B-T), write, fsync, verify."""
    cfg = prepared.config
    value = _b64(signature_value(signature, cfg)).encode("ascii")
    unsigned = b""
    if prepared.level in TIMESTAMPED:
        if cfg.tsa is None:
            raise UsageError(f"{prepared.level} needs a time-stamping authority (--tsa URL)")
        sv_head, sv_tail = prepared.value_c14n
        token = request_timestamp(cfg.tsa, sv_head + value + sv_tail)
        c14n_uri = _c14n_uri_of(prepared)
        lt = prepared.level == "B-LT"
        unsigned = unsigned_properties(
            prepared,
            [token.dump()],
            c14n_uri,
            certs=cfg.ltv_certs if lt else (),
            ocsps=cfg.ltv_ocsps if lt else (),
            crls=cfg.ltv_crls if lt else (),
        )
    out = prepared.head + value + prepared.middle + unsigned + prepared.tail
    try:
        # 0o666: the umask decides, as for any file the user creates; a new
        # file only, never through a symlink.
        fd = os.open(prepared.temp, _CREATE_TEMP, 0o666)
        with os.fdopen(fd, "r+b") as fh:
            fh.write(out)
            fh.flush()
            os.fsync(fh.fileno())
            # What is on disk is what was laid out, and the token's signature holds.
            # The layout itself was computed on the parse of these very bytes.
            fh.seek(0)
            written = fh.read()
    except OSError as exc:
        raise OutputError(
            f"cannot write the signed copy ({exc.strerror or exc})", subject=prepared.temp
        ) from None
    if written != out:
        raise DocumentError("the written file differs from the signed bytes", subject=prepared.temp)
    check_signature_value(prepared, signature)
    return Finished(
        index=prepared.index,
        temp=prepared.temp,
        sha256_after=hashlib.sha256(out).hexdigest(),
        signing_time=prepared.signing_time,
        level=prepared.level,
        warnings=prepared.warnings,
        size_after=len(out),
    )


def check_signature_value(prepared: Prepared, signature: bytes) -> None:
    """The token's signature verifies over the canonical SignedInfo with the signer's key."""
    from cryptography.exceptions import InvalidSignature

    cfg = prepared.config
    try:
        verify_raw_signature(
            cfg.signer_der, prepared.to_sign, signature, cfg.scheme, cfg.digest_algorithm
        )
    except InvalidSignature:
        raise DocumentError(
            "the token's signature does not verify with the signer certificate",
            subject=prepared.temp,
        ) from None


def _c14n_uri_of(prepared: Prepared) -> str:
    m = re.search(rb'CanonicalizationMethod Algorithm="([^"]+)"', prepared.head)
    return m.group(1).decode() if m else C14N["inclusive"]


# ---------------------------------------------------------------- verification


class ReferenceDigestError(DocumentError):
    """A reference's data no longer hashes to its DigestValue (the signature
    value itself verified, with the certificate named here)."""

    def __init__(self, message: str, *, subject: str, certificate_sha256: str) -> None:
        super().__init__(message, subject=subject)
        self.certificate_sha256 = certificate_sha256


@dataclass(frozen=True)
class VerifiedSignature:
    """What our own check of one signature established (it raises otherwise)."""

    signature_id: str | None
    certificate_sha256: str
    signed_info: bytes
    references: int
    xades: bool
    timestamps: tuple[bytes, ...] = field(default=())


def verify_bytes(
    data: bytes,
    source: str,
    *,
    signature_id: str | None = None,
    id_attributes: Sequence[str] = ("Id",),
    base: Path | None = None,
    expected_cert: bytes | None = None,
) -> VerifiedSignature:
    """Check one signature of ``data`` (the one with ``signature_id``, else the last):
    the SignatureValue over the canonical SignedInfo, every reference digest, and
    the XAdES SigningCertificateV2 digest. Raises DocumentError when anything fails.
    Trust in the certificate is not judged here."""
    from cryptography.exceptions import InvalidSignature

    tree = xml_parse.parse(data, source)
    root = tree.getroot()
    ns = {"d": DS, "x": XADES}
    candidates = [el for el in root.iter(f"{{{DS}}}Signature")]
    if signature_id is not None:
        candidates = [el for el in candidates if el.get("Id") == signature_id]
    if not candidates:
        raise DocumentError("no XML signature found", subject=source)
    signature = candidates[-1]
    signed_info = signature.find("d:SignedInfo", ns)
    if signed_info is None:
        raise DocumentError("the signature has no SignedInfo", subject=source)
    method_el = signed_info.find("d:CanonicalizationMethod", ns)
    method = C14N_BY_URI.get(method_el.get("Algorithm") if method_el is not None else "")
    if method is None:
        raise DocumentError("unsupported canonicalisation method", subject=source)
    canonical = c14n(signed_info, method)
    sm = signed_info.find("d:SignatureMethod", ns)
    pair = SIGNATURE_BY_URI.get(sm.get("Algorithm") if sm is not None else "")
    if pair is None:
        raise DocumentError("unsupported signature method", subject=source)
    scheme, digest_algorithm = pair
    cert_el = signature.find("d:KeyInfo/d:X509Data/d:X509Certificate", ns)
    if cert_el is None or not (cert_el.text or "").strip():
        raise DocumentError("the signature carries no X509Certificate", subject=source)
    cert_der = base64.b64decode("".join(cert_el.text.split()))
    if expected_cert is not None and cert_der != expected_cert:
        raise DocumentError("the signature names another certificate", subject=source)
    value_el = signature.find("d:SignatureValue", ns)
    value = base64.b64decode("".join((value_el.text or "").split()))
    if scheme == "ecdsa":
        from signkit.tokens.signer import ecdsa_raw_to_der

        value = ecdsa_raw_to_der(value)
    try:
        verify_raw_signature(cert_der, canonical, value, scheme, digest_algorithm)
    except InvalidSignature:
        raise DocumentError(
            "the signature value does not verify with the certificate", subject=source
        ) from None
    refs = signed_info.findall("d:Reference", ns)
    ids = id_index(root, (*id_attributes, "Id"))
    if not refs:
        raise DocumentError("the signature has no reference", subject=source)
    for ref in refs:
        uri = ref.get("URI")
        if uri is None:
            raise DocumentError("a reference without URI", subject=source)
        dm = ref.find("d:DigestMethod", ns)
        ref_digest = DIGEST_BY_URI.get(dm.get("Algorithm") if dm is not None else "")
        if ref_digest is None:
            raise DocumentError("unsupported digest method", subject=source)
        transforms = [t.get("Algorithm") for t in ref.findall("d:Transforms/d:Transform", ns)]
        try:
            target = _resolve_uri(root, uri, ids, base, id_attributes)
        except DocumentError as exc:
            raise DocumentError(exc.message, subject=source) from None
        expected = base64.b64decode("".join((ref.findtext("d:DigestValue", "", ns)).split()))
        if _digest_reference(target, transforms, signature, ref_digest) != expected:
            raise ReferenceDigestError(
                f"reference {uri or '(document)'} does not match its digest",
                subject=source,
                certificate_sha256=hashlib.sha256(cert_der).hexdigest(),
            )
    props = signature.find("d:Object/x:QualifyingProperties/x:SignedProperties", ns)
    stamps: list[bytes] = []
    if props is not None:
        cd = props.find(
            "x:SignedSignatureProperties/x:SigningCertificateV2/x:Cert/x:CertDigest", ns
        )
        if cd is None:
            raise DocumentError("XAdES: no SigningCertificateV2", subject=source)
        cd_algo = DIGEST_BY_URI.get(cd.find("d:DigestMethod", ns).get("Algorithm"))
        cd_value = base64.b64decode(cd.findtext("d:DigestValue", "", ns))
        if cd_algo is None or hashlib.new(cd_algo, cert_der).digest() != cd_value:
            raise DocumentError(
                "XAdES: SigningCertificateV2 does not match the signer", subject=source
            )
        if not any(
            r.get("Type") == SIGNED_PROPERTIES_TYPE
            and r.get("URI") == "#" + (props.get("Id") or "")
            for r in refs
        ):
            raise DocumentError("XAdES: SignedProperties are not signed", subject=source)
        for ts in signature.iterfind(
            "d:Object/x:QualifyingProperties/x:UnsignedProperties/"
            "x:UnsignedSignatureProperties/x:SignatureTimeStamp/x:EncapsulatedTimeStamp",
            ns,
        ):
            token = base64.b64decode("".join((ts.text or "").split()))
            _check_timestamp_imprint(token, c14n(value_el, method), source)
            stamps.append(token)
    return VerifiedSignature(
        signature_id=signature.get("Id"),
        certificate_sha256=hashlib.sha256(cert_der).hexdigest(),
        signed_info=canonical,
        references=len(refs),
        xades=props is not None,
        timestamps=tuple(stamps),
    )


def verify_raw_signature(
    cert_der: bytes, data: bytes, signature: bytes, scheme: str, digest_algorithm: str
) -> None:
    """Verify ``signature`` (DER for ECDSA) over ``data``; raises InvalidSignature."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    algo: hashes.HashAlgorithm = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
    }[digest_algorithm]
    key = x509.load_der_x509_certificate(cert_der).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algo))
    elif isinstance(key, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algo), algo.digest_size)
            if scheme == "pss"
            else padding.PKCS1v15()
        )
        key.verify(signature, data, pad, algo)
    else:
        raise DocumentError(f"unsupported key type {type(key).__name__}")


def _check_timestamp_imprint(token_der: bytes, message: bytes, source: str) -> None:
    from asn1crypto import cms

    try:
        info = cms.ContentInfo.load(token_der)["content"]["encap_content_info"]["content"].parsed
        algo = info["message_imprint"]["hash_algorithm"]["algorithm"].native
        imprint = info["message_imprint"]["hashed_message"].native
    except (ValueError, KeyError, TypeError):
        raise DocumentError("XAdES: malformed SignatureTimeStamp", subject=source) from None
    if hashlib.new(algo, message).digest() != imprint:
        raise DocumentError(
            "XAdES: the SignatureTimeStamp does not cover the SignatureValue", subject=source
        )


def output_state(
    output: Path,
    source: Path,
    signer_sha256: str,
    *,
    form: str,
    in_place: bool,
    id_attributes: Sequence[str] = ("Id",),
) -> OutputState:
    """Resume: what the existing ``output`` of ``source`` is.

    DONE when its last signature verifies completely (value and every
    reference), is by this certificate, and is over the current input: the
    output is the input with the Signature spliced in (enveloped), holds the
    input's root element (enveloping), or references the input as it is now
    (detached). STALE when the signature is ours but over an earlier input.
    """
    try:
        with output.open("rb") as fh:
            data = fh.read(xml_parse.MAX_BYTES + 1)
        check = verify_bytes(
            data, str(output), id_attributes=id_attributes, base=output.resolve().parent
        )
    except ReferenceDigestError as exc:
        # Only a detached signature's data lives outside the output.
        if form == "detached" and exc.certificate_sha256 == signer_sha256:
            return OutputState.STALE
        return OutputState.FOREIGN
    except Exception:
        return OutputState.FOREIGN
    if check.certificate_sha256 != signer_sha256:
        return OutputState.FOREIGN
    if in_place or form == "detached":
        return OutputState.DONE
    try:
        with source.open("rb") as fh:
            original = fh.read(xml_parse.MAX_BYTES + 1)
    except OSError:
        return OutputState.STALE
    if form == "enveloping":
        try:
            root = _root_bytes(original, xml_parse.parse(original, str(source)))
        except SignkitError:
            return OutputState.STALE
        return OutputState.DONE if root in data else OutputState.STALE
    return OutputState.DONE if _spliced_from(original, data) else OutputState.STALE


def _spliced_from(original: bytes, output: bytes) -> bool:
    """``output`` is ``original`` with one block inserted (an empty parent
    element's ``/>`` opened into ``>…</name>`` counts as an insertion)."""
    if len(output) < len(original):
        return False
    prefix = _common_length(original, output)
    rest = len(original) - prefix
    suffix = _common_length(original[::-1][:rest], output[::-1][: len(output) - prefix])
    return original[prefix : len(original) - suffix] in (b"", b"/")


def _common_length(a: bytes, b: bytes) -> int:
    """Length of the common prefix of ``a`` and ``b`` (binary search on slices)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
