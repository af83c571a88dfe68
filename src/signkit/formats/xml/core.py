"""Core validation of one ds:Signature (XMLDSig §3.2), shared by ``verify`` and
the signing self-check so that the two cannot disagree.

``check_signature`` canonicalises SignedInfo where it stands, finds the key
whose signature value verifies (X509Data, KeyValue, DEREncodedKeyValue,
RetrievalMethod and KeyInfoReference within the document, then any extra
certificates the caller knows of, such as XAdES CertificateValues), and
processes every Reference of SignedInfo and of the ds:Manifests it signs.
It judges nothing about trust or policy: it reports what holds.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signkit.errors import DocumentError
from signkit.formats.xml import c14n
from signkit.formats.xml.algorithms import (
    DS,
    DS11,
    SIGNATURES,
    PssParameters,
    SignatureAlgorithm,
    digest,
    digest_name,
    verify_value,
)
from signkit.formats.xml.parse import XmlDocument
from signkit.formats.xml.references import (
    ENVELOPED,
    AmbiguousReferenceError,
    Context,
    SignatureFormatError,
    SignedDataNotFoundError,
    Target,
    UnsupportedAlgorithmError,
    processed,
    to_octets,
)

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from lxml.etree import _Element

MANIFEST_TYPE = DS + "Manifest"
_PSS = "http://www.w3.org/2007/05/xmldsig-more#"


def ds(name: str) -> str:
    """The Clark name of an XMLDSig element."""
    return f"{{{DS}}}{name}"


def b64(text: str | None, what: str) -> bytes:
    """Base64 element content (whitespace allowed); SignatureFormatError otherwise."""
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureFormatError(f"{what} is not base64") from None


@dataclass(frozen=True, eq=False)
class ReferenceCheck:
    """One Reference: what it names and whether its digest holds."""

    element: _Element
    """The ds:Reference."""
    uri: str | None
    """Its URI attribute."""
    type: str | None
    """Its Type attribute."""
    digest_algorithm: str | None
    """hashlib name of its DigestMethod (None when unknown)."""
    target: Target | None
    """What the URI names (None when it could not be dereferenced)."""
    octets: bytes | None
    """The data digested (after the transforms), when it could be computed."""
    matches: bool
    """The data hashes to the DigestValue."""
    problem: DocumentError | None = None
    """Why the digest could not be computed (not found, ambiguous, malformed, unsupported)."""


class KeyCandidate:
    """A public key the signature may have been made with (a certificate's key
    is read when first asked for: most signatures verify with the first one)."""

    def __init__(self, key: PublicKeyTypes | None, certificate: bytes | None, source: str) -> None:
        self._key = key
        self.certificate = certificate
        """Its certificate (DER), when one is known."""
        self.source = source
        """Where it came from (X509Data, KeyValue, DEREncodedKeyValue, CertificateValues)."""

    @property
    def key(self) -> PublicKeyTypes:
        """The key (SignatureFormatError for an unreadable certificate)."""
        if self._key is None:
            assert self.certificate is not None  # noqa: S101 - a key or a certificate
            try:
                self._key = _certificate_key(self.certificate)
            except ValueError:
                source = self.source
                raise SignatureFormatError(f"an unreadable certificate in {source}") from None
        return self._key


@functools.lru_cache(maxsize=64)
def _certificate_key(der: bytes) -> PublicKeyTypes:
    """The public key of a certificate (DER). A batch's signatures carry the
    same few certificates: each is read once per process, keyed by its bytes."""
    from cryptography import x509

    return x509.load_der_x509_certificate(der).public_key()


@dataclass(frozen=True, eq=False)
class CoreResult:
    """What core validation established for one ds:Signature."""

    signature: _Element
    """The ds:Signature."""
    signed_info: bytes
    """The canonical SignedInfo (what was signed)."""
    method_uri: str
    """SignatureMethod Algorithm."""
    signer: KeyCandidate | None
    """The key whose signature value verifies (None: none does)."""
    candidates: tuple[KeyCandidate, ...]
    """Every key and certificate found for it."""
    certificates: tuple[bytes, ...]
    """Every certificate the signature carries in KeyInfo (DER), for path building."""
    references: tuple[ReferenceCheck, ...]
    """SignedInfo's references, in order."""
    manifest_references: tuple[ReferenceCheck, ...] = ()
    """References of signed ds:Manifests (reported, not part of core validation)."""
    digests_used: tuple[str, ...] = field(default=())
    """DigestMethod URIs of SignedInfo's references."""

    @property
    def value_ok(self) -> bool:
        """The signature value verifies with a key found for it."""
        return self.signer is not None

    @property
    def references_ok(self) -> bool:
        """Every SignedInfo reference was dereferenced and matches its digest."""
        return all(r.matches for r in self.references)

    @property
    def valid(self) -> bool:
        """Core validation (XMLDSig §3.2) holds."""
        return self.value_ok and self.references_ok


def signatures_of(doc: XmlDocument) -> list[_Element]:
    """Every ds:Signature of the document, counter-signatures included, in order."""
    return list(doc.root.iter(ds("Signature")))


def check_signature(
    doc: XmlDocument,
    signature: _Element,
    *,
    base: Path | None,
    id_attributes: Sequence[str] = (),
    extra_certificates: Sequence[bytes] = (),
    disposable: bool = False,
) -> CoreResult:
    """Core validation of ``signature`` (see the module docstring).

    Raises SignatureFormatError when the signature is malformed and
    UnsupportedAlgorithmError for a canonicalisation or signature method
    signkit does not implement; a failing value or digest is reported, not raised.

    ``disposable``: the caller reads nothing of ``doc`` afterwards, so an
    enveloped whole-document reference is processed last, with the signature
    taken out of the tree itself instead of a copy of the document.
    """
    from signkit.formats.xml.references import VERIFY_ID_ATTRIBUTES

    names = tuple(dict.fromkeys((*id_attributes, *VERIFY_ID_ATTRIBUTES)))
    ctx = Context(doc=doc, signature=signature, base=base, id_attributes=names)
    signed_info = _child(signature, "SignedInfo", required=True)
    method_el = _child(signed_info, "CanonicalizationMethod", required=True)
    algorithm_uri = method_el.get("Algorithm")
    method = c14n.method_of(algorithm_uri, _prefixes(method_el))
    if method is None:
        raise UnsupportedAlgorithmError(f"unsupported canonicalisation method {algorithm_uri}")
    canonical = c14n.canonicalize_element(signed_info, method)
    sm = _child(signed_info, "SignatureMethod", required=True)
    method_uri = sm.get("Algorithm") or ""
    algorithm = SIGNATURES.get(method_uri)
    if algorithm is None:
        raise UnsupportedAlgorithmError(f"unsupported signature method {method_uri}")
    if algorithm.key == "hmac":
        raise SignatureFormatError(
            "an HMAC signature: it is checked with a shared secret, not a public key, "
            "so nobody else can verify it"
        )
    pss = _pss_parameters(sm) if method_uri == _PSS + "rsa-pss" else None
    value_el = _child(signature, "SignatureValue", required=True)
    value = b64(value_el.text, "the SignatureValue")
    if not value:
        raise SignatureFormatError("the SignatureValue is empty")
    refs = list(signed_info.iterchildren(ds("Reference")))
    if not refs:
        raise SignatureFormatError("SignedInfo has no Reference")
    key_info = signature.find(ds("KeyInfo"))
    candidates = list(_keys(key_info, doc, names)) if key_info is not None else []
    certificates = tuple(c.certificate for c in candidates if c.certificate is not None)
    known = set(certificates)
    candidates += [
        _certificate_candidate(der, "CertificateValues")
        for der in extra_certificates
        if der not in known
    ]
    signer = _find_signer(candidates, algorithm, value, canonical, pss)
    last = [i for i, r in enumerate(refs) if disposable and _enveloped_document(r)]
    checks = {i: _check_reference(r, ctx) for i, r in enumerate(refs) if i not in last}
    manifests = tuple(
        check
        for r in checks.values()
        if r.target is not None and r.target.element is not None
        for m in _manifests(r.target.element, r.type)
        for check in (_check_reference(x, ctx) for x in m.iterchildren(ds("Reference")))
    )
    if last:
        if signature.getparent() is not None:
            c14n.detach(signature)
        checks.update((i, _check_reference(refs[i], ctx)) for i in last)
    references = tuple(checks[i] for i in range(len(refs)))
    return CoreResult(
        signature=signature,
        signed_info=canonical,
        method_uri=method_uri,
        signer=signer,
        candidates=tuple(candidates),
        certificates=certificates,
        references=references,
        manifest_references=manifests,
        digests_used=tuple(
            str(dm.get("Algorithm") or "")
            for r in refs
            if (dm := r.find(ds("DigestMethod"))) is not None
        ),
    )


def _enveloped_document(ref: _Element) -> bool:
    """The reference is the whole document with the enveloped-signature transform."""
    return ref.get("URI") in ("", "#xpointer(/)") and any(
        t.get("Algorithm") == ENVELOPED
        for t in ref.iterfind(f"{ds('Transforms')}/{ds('Transform')}")
    )


def _child(parent: _Element, name: str, *, required: bool) -> _Element:
    found = parent.find(ds(name))
    if found is None and required:
        raise SignatureFormatError(f"the signature has no {name}")
    return found


def _prefixes(method_el: _Element) -> tuple[str, ...]:
    inclusive = method_el.find("{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces")
    return tuple((inclusive.get("PrefixList") or "").split()) if inclusive is not None else ()


def _pss_parameters(method_el: _Element) -> PssParameters:
    params = method_el.find(f"{{{_PSS}}}RSAPSSParams")
    name: str | None = "sha256"
    mgf: str | None = "sha256"
    salt: int | None = None
    if params is not None:
        dm = params.find(ds("DigestMethod"))
        if dm is not None:
            name = digest_name(dm.get("Algorithm"))
        mgf_dm = params.find(f"{{{_PSS}}}MaskGenerationFunction/{ds('DigestMethod')}")
        mgf = digest_name(mgf_dm.get("Algorithm")) if mgf_dm is not None else name
        salt_text = params.findtext(f"{{{_PSS}}}SaltLength")
        if salt_text is not None:
            try:
                salt = int(salt_text.strip())
            except ValueError:
                raise SignatureFormatError("RSAPSSParams: SaltLength is not a number") from None
    if not name or not mgf:
        raise UnsupportedAlgorithmError("RSAPSSParams: unsupported digest")
    return PssParameters(name, mgf, salt if salt is not None else hashlib.new(name).digest_size)


def _find_signer(
    candidates: Sequence[KeyCandidate],
    algorithm: SignatureAlgorithm,
    value: bytes,
    data: bytes,
    pss: PssParameters | None,
) -> KeyCandidate | None:
    for candidate in candidates:
        if verify_value(candidate.key, algorithm, value, data, pss):
            if candidate.certificate is None:
                # A bare key: name its certificate when the signature carries one.
                for other in candidates:
                    if other.certificate is not None and _same_key(other.key, candidate.key):
                        return other
            return candidate
    return None


def _same_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    from cryptography.hazmat.primitives import serialization

    form = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    try:
        return a.public_bytes(der, form) == b.public_bytes(der, form)
    except ValueError:
        return False


def _certificate_candidate(der: bytes, source: str) -> KeyCandidate:
    return KeyCandidate(None, der, source)


def _keys(
    key_info: _Element, doc: XmlDocument, names: Sequence[str], depth: int = 0
) -> Iterator[KeyCandidate]:
    """Keys and certificates of a KeyInfo, following in-document retrievals."""
    for child in key_info:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == ds("X509Data"):
            yield from _x509_data(child)
        elif tag == ds("KeyValue"):
            key = _key_value(child)
            if key is not None:
                yield KeyCandidate(key, None, "KeyValue")
        elif tag == f"{{{DS11}}}DEREncodedKeyValue":
            from cryptography.hazmat.primitives.serialization import load_der_public_key

            try:
                key = load_der_public_key(b64(child.text, "DEREncodedKeyValue"))
            except ValueError:
                raise SignatureFormatError("DEREncodedKeyValue is not a public key") from None
            yield KeyCandidate(key, None, "DEREncodedKeyValue")
        elif tag in (ds("RetrievalMethod"), f"{{{DS11}}}KeyInfoReference") and depth < 2:
            uri = child.get("URI") or ""
            if not uri.startswith("#"):
                continue  # only in-document retrievals: nothing is fetched
            hits = doc.ids(names).get(uri[1:], [])
            if len(hits) != 1:
                continue
            found = hits[0]
            if found.tag == ds("KeyInfo"):
                yield from _keys(found, doc, names, depth + 1)
            elif found.tag == ds("X509Data"):
                yield from _x509_data(found)
            else:
                key = _key_value(found)
                if key is not None:
                    yield KeyCandidate(key, None, "KeyValue")


def _x509_data(x509_data: _Element) -> Iterator[KeyCandidate]:
    for cert in x509_data.iterchildren(ds("X509Certificate")):
        yield _certificate_candidate(b64(cert.text, "an X509Certificate"), "X509Data")


def _integer(parent: _Element, name: str, ns: str = DS) -> int:
    el = parent.find(f"{{{ns}}}{name}")
    if el is None:
        raise SignatureFormatError(f"KeyValue without {name}")
    return int.from_bytes(b64(el.text, f"KeyValue {name}"), "big")


def _key_value(el: _Element) -> PublicKeyTypes | None:
    """A ds:KeyValue's RSA, DSA or (XMLDSig 1.1) EC key."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    inner = el if el.tag != ds("KeyValue") else next(iter(el), None)
    if inner is None or not isinstance(inner.tag, str):
        return None
    try:
        if inner.tag == ds("RSAKeyValue"):
            return rsa.RSAPublicNumbers(
                _integer(inner, "Exponent"), _integer(inner, "Modulus")
            ).public_key()
        if inner.tag == ds("DSAKeyValue"):
            params = dsa.DSAParameterNumbers(
                _integer(inner, "P"), _integer(inner, "Q"), _integer(inner, "G")
            )
            return dsa.DSAPublicNumbers(_integer(inner, "Y"), params).public_key()
        if inner.tag == f"{{{DS11}}}ECKeyValue":
            curve_el = inner.find(f"{{{DS11}}}NamedCurve")
            point = inner.find(f"{{{DS11}}}PublicKey")
            if curve_el is None or point is None:
                raise SignatureFormatError("ECKeyValue without NamedCurve or PublicKey")
            curve_uri = curve_el.get("URI") or ""
            curve = _curve(curve_uri)
            if curve is None:
                raise UnsupportedAlgorithmError(f"unsupported curve {curve_uri}")
            return ec.EllipticCurvePublicKey.from_encoded_point(
                curve,  # type: ignore[arg-type]
                b64(point.text, "ECKeyValue PublicKey"),
            )
    except ValueError:
        raise SignatureFormatError("KeyValue is not a valid public key") from None
    return None


def _curve(uri: str) -> object:
    from cryptography.hazmat.primitives.asymmetric import ec

    return {
        "1.2.840.10045.3.1.7": ec.SECP256R1(),
        "1.3.132.0.34": ec.SECP384R1(),
        "1.3.132.0.35": ec.SECP521R1(),
    }.get(uri.removeprefix("urn:oid:"))


def _manifests(element: _Element, ref_type: str | None) -> list[_Element]:
    """The ds:Manifest a reference names (itself, or the one inside a ds:Object)."""
    if element.tag == ds("Manifest"):
        return [element]
    if ref_type == MANIFEST_TYPE or element.tag == ds("Object"):
        return [m for m in element.iterchildren(ds("Manifest"))]
    return []


def _check_reference(ref: _Element, ctx: Context) -> ReferenceCheck:
    uri = ref.get("URI")
    ref_type = ref.get("Type")
    dm = ref.find(ds("DigestMethod"))
    name = digest_name(dm.get("Algorithm") if dm is not None else None)
    target: Target | None = None
    try:
        if name is None:
            method_uri = dm.get("Algorithm") if dm is not None else "(none)"
            raise UnsupportedAlgorithmError(f"unsupported digest method {method_uri}")
        expected = b64(ref.findtext(ds("DigestValue")), "a DigestValue")
        target = ctx.resolve(uri)
        octets = to_octets(processed(ref, ctx))
    except (
        SignedDataNotFoundError,
        AmbiguousReferenceError,
        SignatureFormatError,
        UnsupportedAlgorithmError,
    ) as exc:
        return ReferenceCheck(ref, uri, ref_type, name, target, None, False, exc)
    return ReferenceCheck(
        ref, uri, ref_type, name, target, octets, digest(name, octets) == expected
    )
