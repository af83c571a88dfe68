"""XAdES qualifying properties: the ones signkit writes, and how the ones any
producer wrote are read (namespaces 1.1.1, 1.2.2, 1.3.2 and 1.4.1).

Writing: SignedProperties (SigningTime, SigningCertificateV2, the claimed
role, DataObjectFormat) and the unsigned SignatureTimeStamp and B-LT values.
Reading: where the QualifyingProperties are, the SigningCertificate (v1 or
V2: a certificate digest that identifies the signer, SHA-1 included), the
signing time, the validation values, and for every time-stamp the exact
bytes it must cover (ETSI TS 101 903 / EN 319 132-1), so that a token
copied from another signature is caught by its imprint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signkit.errors import DocumentError
from signkit.formats.xml import c14n
from signkit.formats.xml.algorithms import DIGEST_URI, digest, digest_name
from signkit.formats.xml.c14n import escape_text, quote_attribute
from signkit.formats.xml.core import ds
from signkit.formats.xml.references import (
    Context,
    SignedDataNotFoundError,
    UnsupportedAlgorithmError,
    processed,
    to_octets,
    transform,
)

if TYPE_CHECKING:
    from lxml.etree import _Element

XADES = "http://uri.etsi.org/01903/v1.3.2#"
"""The namespace signkit writes."""
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
NAMESPACES = (
    "http://uri.etsi.org/01903/v1.1.1#",
    "http://uri.etsi.org/01903/v1.2.2#",
    XADES,
    XADES141,
)
SIGNED_PROPERTIES_TYPES = frozenset(
    (
        "http://uri.etsi.org/01903#SignedProperties",
        *(ns + "SignedProperties" for ns in NAMESPACES),
    )
)
"""Reference Type values that mark the SignedProperties."""
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
COUNTERSIGNED_TYPE = "http://uri.etsi.org/01903#CountersignedSignature"


def is_xades(element: _Element, local: str) -> bool:
    """``element`` is the XAdES element ``local`` in any XAdES namespace."""
    tag = element.tag
    if not isinstance(tag, str) or not tag.endswith("}" + local):
        return False
    return tag[1:].partition("}")[0] in NAMESPACES


def _children(parent: _Element | None, local: str) -> list[_Element]:
    if parent is None:
        return []
    return [c for c in parent if is_xades(c, local)]


def _child(parent: _Element | None, local: str) -> _Element | None:
    found = _children(parent, local)
    return found[0] if found else None


def qualifying_properties(signature: _Element) -> _Element | None:
    """The signature's QualifyingProperties (in one of its ds:Objects)."""
    for obj in signature.iterchildren(ds("Object")):
        found = _child(obj, "QualifyingProperties")
        if found is not None:
            return found
    return None


def signed_properties(signature: _Element) -> _Element | None:
    """The signature's xades:SignedProperties."""
    return _child(qualifying_properties(signature), "SignedProperties")


def unsigned_signature_properties(signature: _Element) -> _Element | None:
    """The signature's xades:UnsignedSignatureProperties."""
    unsigned = _child(qualifying_properties(signature), "UnsignedProperties")
    return _child(unsigned, "UnsignedSignatureProperties")


def _signed_signature_properties(props: _Element) -> _Element | None:
    return _child(props, "SignedSignatureProperties")


def signing_time(props: _Element) -> str | None:
    """The claimed SigningTime."""
    el = _child(_signed_signature_properties(props), "SigningTime")
    return (el.text or "").strip() if el is not None else None


def _local(el: _Element) -> str:
    return el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""


@dataclass(frozen=True)
class CertDigest:
    """One certificate a SigningCertificate(V2) names, by its digest."""

    algorithm: str | None
    """hashlib name (None: a digest method signkit does not know)."""
    value: bytes
    """The digest."""


def signing_certificates(props: _Element) -> list[CertDigest] | None:
    """The certificates SigningCertificate (v1) or SigningCertificateV2 names;
    None when the properties carry neither."""
    ssp = _signed_signature_properties(props)
    holders = _children(ssp, "SigningCertificateV2") + _children(ssp, "SigningCertificate")
    if not holders:
        return None
    out = []
    for holder in holders:
        for cert in _children(holder, "Cert"):
            cd = _child(cert, "CertDigest")
            if cd is None:
                continue
            # 1.1.1 writes xades:DigestMethod/DigestValue, later versions ds:
            method = next((c for c in cd if _local(c) == "DigestMethod"), None)
            value = next((c for c in cd if _local(c) == "DigestValue"), None)
            if method is None or value is None:
                continue
            try:
                raw = base64.b64decode("".join((value.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                continue
            out.append(CertDigest(digest_name(method.get("Algorithm")), raw))
    return out


def names_certificate(digests: Sequence[CertDigest], cert_der: bytes) -> bool:
    """One of ``digests`` is that of ``cert_der``."""
    return any(d.algorithm and digest(d.algorithm, cert_der) == d.value for d in digests)


def encapsulated_values(signature: _Element) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(certificates, OCSP responses, CRLs) of CertificateValues and RevocationValues;
    unreadable entries are left out, never trusted."""
    usp = unsigned_signature_properties(signature)
    certs: list[bytes] = []
    ocsps: list[bytes] = []
    crls: list[bytes] = []
    for el in usp.iter() if usp is not None else ():
        local = _local(el)
        target = {
            "EncapsulatedX509Certificate": certs,
            "EncapsulatedOCSPValue": ocsps,
            "EncapsulatedCRLValue": crls,
        }.get(local)
        if target is None:
            continue
        try:
            target.append(base64.b64decode("".join((el.text or "").split()), validate=True))
        except (binascii.Error, ValueError):
            continue
    return certs, ocsps, crls


# ---------------------------------------------------------------- time-stamps

SIGNATURE_TIMESTAMP = "SignatureTimeStamp"
ARCHIVE_TIMESTAMP = "ArchiveTimeStamp"
CONTENT_TIMESTAMPS = ("AllDataObjectsTimeStamp", "IndividualDataObjectsTimeStamp")
_VALIDATION = (
    "SigAndRefsTimeStamp",
    "SigAndRefsTimeStampV2",
    "RefsOnlyTimeStamp",
    "RefsOnlyTimeStampV2",
)
_REFS = (
    "CompleteCertificateRefs",
    "CompleteCertificateRefsV2",
    "CompleteRevocationRefs",
    "AttributeCertificateRefs",
    "AttributeCertificateRefsV2",
    "AttributeRevocationRefs",
)


@dataclass(frozen=True, eq=False)
class Stamp:
    """One XAdES time-stamp element and what its tokens must cover."""

    kind: str
    """SignatureTimeStamp, ArchiveTimeStamp, AllDataObjectsTimeStamp, …"""
    element: _Element
    """The time-stamp element."""
    tokens: tuple[bytes, ...]
    """Its EncapsulatedTimeStamp tokens (DER)."""
    message: bytes | None
    """The bytes the tokens must cover (None when they cannot be computed)."""
    problem: str | None = None
    """Why the covered bytes could not be computed."""


def stamps(signature: _Element, ctx: Context) -> list[Stamp]:
    """Every time-stamp of the signature, signed (content) and unsigned."""
    out = []
    props = signed_properties(signature)
    sdop = _child(props, "SignedDataObjectProperties")
    for el in sdop if sdop is not None else ():
        if _local(el) in CONTENT_TIMESTAMPS and is_xades(el, _local(el)):
            out.append(_stamp(el, signature, ctx))
    usp = unsigned_signature_properties(signature)
    for el in usp if usp is not None else ():
        local = _local(el)
        if local in (SIGNATURE_TIMESTAMP, ARCHIVE_TIMESTAMP, *_VALIDATION) and is_xades(el, local):
            out.append(_stamp(el, signature, ctx))
    return out


def _stamp(el: _Element, signature: _Element, ctx: Context) -> Stamp:
    kind = _local(el)
    tokens: list[bytes] = []
    for encoded in (c for c in el if _local(c) == "EncapsulatedTimeStamp"):
        try:
            tokens.append(base64.b64decode("".join((encoded.text or "").split()), validate=True))
        except (binascii.Error, ValueError):
            return Stamp(kind, el, (), None, "an EncapsulatedTimeStamp is not base64")
    method_el = el.find(ds("CanonicalizationMethod"))
    method = c14n.method_of(method_el.get("Algorithm")) if method_el is not None else c14n.INCLUSIVE
    if method is None:
        return Stamp(kind, el, tuple(tokens), None, "unsupported canonicalisation method")
    try:
        message = b"".join(_covered(kind, el, signature, ctx, method))
    except DocumentError as exc:
        return Stamp(kind, el, tuple(tokens), None, exc.message)
    return Stamp(kind, el, tuple(tokens), message)


def _covered(
    kind: str, el: _Element, signature: _Element, ctx: Context, method: c14n.Method
) -> Iterator[bytes]:
    """The pieces a time-stamp covers, in order."""
    includes = [c for c in el if _local(c) in ("Include", "HashDataInfo")]
    if includes:
        yield from _included(includes, signature, ctx, method)
        return

    def canonical(element: _Element | None) -> bytes:
        return c14n.canonicalize_element(element, method) if element is not None else b""

    value = signature.find(ds("SignatureValue"))
    usp = unsigned_signature_properties(signature)
    if kind == SIGNATURE_TIMESTAMP:
        yield canonical(value)
    elif kind == "AllDataObjectsTimeStamp":
        for ref in signature.iterfind(f"{ds('SignedInfo')}/{ds('Reference')}"):
            if ref.get("Type") not in SIGNED_PROPERTIES_TYPES:
                yield to_octets(processed(ref, ctx), method)
    elif kind in _VALIDATION:
        if kind.startswith("SigAndRefs"):
            yield canonical(value)
            for stamp in _children(usp, SIGNATURE_TIMESTAMP):
                yield canonical(stamp)
        for name in _REFS:
            for part in _children(usp, name):
                yield canonical(part)
    elif kind == ARCHIVE_TIMESTAMP:
        for ref in signature.iterfind(f"{ds('SignedInfo')}/{ds('Reference')}"):
            yield to_octets(processed(ref, ctx), method)
        for name in ("SignedInfo", "SignatureValue", "KeyInfo"):
            yield canonical(signature.find(ds(name)))
        for prop in usp if usp is not None else ():
            if prop is el:
                break
            if isinstance(prop.tag, str):
                yield canonical(prop)
        holder = qualifying_properties(signature)
        for obj in signature.iterchildren(ds("Object")):
            if holder is None or holder.getparent() is not obj:
                yield canonical(obj)
    else:
        raise UnsupportedAlgorithmError(f"{kind} without Include elements")


def _included(
    includes: list[_Element], signature: _Element, ctx: Context, method: c14n.Method
) -> Iterator[bytes]:
    """Explicitly included data: Include URI (1.2.2 and later) or HashDataInfo (1.1.1)."""
    refs = list(signature.iterfind(f"{ds('SignedInfo')}/{ds('Reference')}"))
    for inc in includes:
        uri = inc.get("URI") or inc.get("uri") or ""
        if _local(inc) == "HashDataInfo":
            data = ctx.resolve(uri).data
            for t in inc.iterfind(f"{{*}}Transforms/{ds('Transform')}"):
                data = transform(data, t, ctx)
            yield to_octets(data, method)
            continue
        if not uri.startswith("#"):
            raise SignedDataNotFoundError(f"a time-stamp includes {uri}, outside the document")
        target = ctx.resolve(uri).element
        referenced = (inc.get("referencedData") or "").lower() == "true"
        if target is not None and target.tag == ds("Reference"):
            yield (
                to_octets(processed(target, ctx), method)
                if referenced
                else c14n.canonicalize_element(target, method)
            )
            continue
        same = [r for r in refs if r.get("URI") == uri]
        if referenced and same:
            yield to_octets(processed(same[0], ctx), method)
        elif target is not None:
            yield c14n.canonicalize_element(target, method)


@dataclass(frozen=True)
class Imprint:
    """The message imprint of a time-stamp token."""

    algorithm: str
    """hashlib name."""
    value: bytes
    """The hashed message."""


def imprint_of(token: bytes) -> Imprint | None:
    """A time-stamp token's message imprint (None when the token is unreadable)."""
    from asn1crypto import cms, tsp

    try:
        content = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"]
        info = tsp.TSTInfo.load(content.contents)
        algorithm = info["message_imprint"]["hash_algorithm"]["algorithm"].native
        value = info["message_imprint"]["hashed_message"].native
        return Imprint(str(algorithm), bytes(value))
    except (ValueError, KeyError, TypeError):
        return None


def covers(token: bytes, message: bytes) -> bool:
    """The token's imprint is that of ``message``."""
    imprint = imprint_of(token)
    if imprint is None:
        return False
    try:
        return digest(imprint.algorithm, message) == imprint.value
    except ValueError:
        return False


# ---------------------------------------------------------------- writing


def _q(prefix: str, name: str) -> str:
    return f"{prefix}:{name}" if prefix else name


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, kw_only=True)
class SignedPropertiesSpec:
    """What signkit puts in the SignedProperties it writes."""

    signature_id: str
    """Id of the ds:Signature they qualify."""
    ds_prefix: str
    """Prefix of the XMLDSig namespace in the Signature ('' = default namespace)."""
    certificate_der: bytes
    """The signer certificate."""
    digest_algorithm: str
    """hashlib name of the certificate digest."""
    signing_time: str
    """ISO 8601 with offset."""
    signer_role: str | None = None
    """Claimed role."""
    data_object_format: str | None = None
    """MIME type of the signed data (its reference is ``<signature id>-ref0``)."""


def signed_properties_xml(spec: SignedPropertiesSpec) -> str:
    """The QualifyingProperties element (with its SignedProperties) as text."""
    from asn1crypto import cms
    from asn1crypto import x509 as ax509

    p = spec.ds_prefix
    sid = spec.signature_id
    cert = ax509.Certificate.load(spec.certificate_der)
    issuer_serial = cms.IssuerSerial(
        {
            "issuer": [ax509.GeneralName(name="directory_name", value=cert.issuer)],
            "serial": cert.serial_number,
        }
    ).dump()
    cert_digest = digest(spec.digest_algorithm, spec.certificate_der)
    out = [
        f'<xades:QualifyingProperties xmlns:xades="{XADES}" Target={quote_attribute("#" + sid)}>',
        f"<xades:SignedProperties Id={quote_attribute(sid + '-signedprops')}>",
        "<xades:SignedSignatureProperties>",
        f"<xades:SigningTime>{spec.signing_time}</xades:SigningTime>",
        "<xades:SigningCertificateV2><xades:Cert><xades:CertDigest>",
        f'<{_q(p, "DigestMethod")} Algorithm="{DIGEST_URI[spec.digest_algorithm]}"/>',
        f"<{_q(p, 'DigestValue')}>{_b64(cert_digest)}</{_q(p, 'DigestValue')}>",
        "</xades:CertDigest>",
        f"<xades:IssuerSerialV2>{_b64(issuer_serial)}</xades:IssuerSerialV2>",
        "</xades:Cert></xades:SigningCertificateV2>",
    ]
    if spec.signer_role:
        out.append(
            "<xades:SignerRoleV2><xades:ClaimedRoles><xades:ClaimedRole>"
            f"{escape_text(spec.signer_role)}"
            "</xades:ClaimedRole></xades:ClaimedRoles></xades:SignerRoleV2>"
        )
    out.append("</xades:SignedSignatureProperties>")
    if spec.data_object_format:
        out.append(
            "<xades:SignedDataObjectProperties>"
            f"<xades:DataObjectFormat ObjectReference={quote_attribute('#' + sid + '-ref0')}>"
            f"<xades:MimeType>{escape_text(spec.data_object_format)}</xades:MimeType>"
            "</xades:DataObjectFormat></xades:SignedDataObjectProperties>"
        )
    out.append("</xades:SignedProperties></xades:QualifyingProperties>")
    return "".join(out)


def encapsulated(kind: str, values: Sequence[bytes]) -> str:
    """One ``xades:Encapsulated{kind}`` element per DER value, in base64."""
    return "".join(
        f"<xades:Encapsulated{kind}>{_b64(value)}</xades:Encapsulated{kind}>" for value in values
    )


def revocation_values_content(ocsps: Sequence[bytes], crls: Sequence[bytes]) -> str:
    """What a ``xades:RevocationValues`` holds: the CRLs, then the OCSP responses."""
    parts = []
    if crls:
        parts.append(f"<xades:CRLValues>{encapsulated('CRLValue', crls)}</xades:CRLValues>")
    if ocsps:
        parts.append(f"<xades:OCSPValues>{encapsulated('OCSPValue', ocsps)}</xades:OCSPValues>")
    return "".join(parts)


def unsigned_properties_xml(
    *,
    signature_id: str,
    ds_prefix: str,
    c14n_uri: str,
    tokens: Sequence[bytes],
    certs: Sequence[bytes] = (),
    ocsps: Sequence[bytes] = (),
    crls: Sequence[bytes] = (),
) -> bytes:
    """xades:UnsignedProperties: one SignatureTimeStamp per token (DER) and, for
    B-LT, the validation data: CertificateValues and RevocationValues."""
    p = ds_prefix
    sid = signature_id
    parts = [
        f"<xades:SignatureTimeStamp Id={quote_attribute(f'{sid}-ts{i}')}>"
        f'<{_q(p, "CanonicalizationMethod")} Algorithm="{c14n_uri}"/>'
        f"<xades:EncapsulatedTimeStamp>{_b64(t)}</xades:EncapsulatedTimeStamp>"
        "</xades:SignatureTimeStamp>"
        for i, t in enumerate(tokens)
    ]
    if certs:
        parts.append(
            f"<xades:CertificateValues Id={quote_attribute(sid + '-certs')}>"
            f"{encapsulated('X509Certificate', certs)}</xades:CertificateValues>"
        )
    if ocsps or crls:
        parts.append(
            f"<xades:RevocationValues Id={quote_attribute(sid + '-revocation')}>"
            f"{revocation_values_content(ocsps, crls)}</xades:RevocationValues>"
        )
    return (
        "<xades:UnsignedProperties><xades:UnsignedSignatureProperties>"
        f"{''.join(parts)}</xades:UnsignedSignatureProperties></xades:UnsignedProperties>"
    ).encode()
