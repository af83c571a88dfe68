"""XML signature verification: core XMLDSig, XAdES signed properties, wrapping refusal.

Parsing never loads a DTD, expands an entity or touches the network. The
signature maths is signxml's; the chain, validity and revocation are judged
by the same certvalidator policy as everything else (so --at and --trust
behave alike for PDF and XML). What was signed is read from the references
signxml verified, and a signature is refused when its signed element is not
the element the document presents (signature wrapping).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signkit.errors import InputError, InputFormatError
from signkit.pki.chain import validate_chain
from signkit.verify.policy import VerifyPolicy, weak_algorithms
from signkit.verify.verdict import (
    DocumentVerdict,
    Indication,
    SignatureVerdict,
    SubIndication,
    make_verdict,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
NS = {"ds": DS, "xades": XADES}
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"
_ID_ATTRIBUTES = ("Id", "ID", "id")
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}


def preload() -> None:
    """Import the XML stack (before worker processes fork)."""
    import lxml.etree  # noqa: F401
    import signxml  # noqa: F401


def _safe_parser() -> Any:
    from lxml import etree

    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse_safely(data: bytes, source: str) -> Any:
    """Parse without DTDs, entity expansion or network; a DOCTYPE is refused outright."""
    from lxml import etree

    try:
        root = etree.fromstring(data, parser=_safe_parser())
    except etree.XMLSyntaxError as exc:
        raise InputFormatError(f"malformed XML ({exc})", subject=source) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise InputFormatError("XML with a DOCTYPE/DTD is refused (entity attacks)", subject=source)
    return root


def verify_xml(path: Path, policy: VerifyPolicy) -> DocumentVerdict:
    """Verify every ds:Signature of one XML document."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    root = parse_safely(data, str(path))
    signatures = root.xpath("//ds:Signature", namespaces=NS)
    base = path.resolve().parent
    verdicts = [_verify_one(i, root, sig, policy, base) for i, sig in enumerate(signatures)]
    return DocumentVerdict.of(str(path), "xml", verdicts, hashlib.sha256(data).hexdigest())


def _verifier_class() -> Any:
    from signxml.verifier import XMLVerifier

    class _OneSignatureVerifier(XMLVerifier):
        """signxml, told which signature to check and not to judge validity dates.

        Dates, chain and revocation are judged by validate_chain at the
        policy's moment (signxml would always use now).
        """

        target: int = 0

        def _get_signature(self, root: Any) -> Any:
            # signxml works on its own copy of the document: the same signature there
            return root.xpath("//ds:Signature", namespaces=NS)[self.target]

        def _check_cert_validity(self, cert: Any, cert_source: Any) -> None:
            return None

        def _c14n(self, nodes: Any, algorithm: Any, inclusive_ns_prefixes: Any = None) -> Any:
            # libxml2 2.14 emits a spurious xmlns="" two levels below a default
            # namespace when canonicalising a subtree in place (so a valid
            # unprefixed ds:Signature fails); a detached copy carries every
            # in-scope declaration and canonicalises correctly.
            from lxml import etree

            items = nodes if isinstance(nodes, list) else [nodes]
            detached = [
                etree.fromstring(etree.tostring(n), parser=_safe_parser())
                if n.getparent() is not None
                else n
                for n in items
            ]
            return super()._c14n(detached, algorithm, inclusive_ns_prefixes)

    return _OneSignatureVerifier


def _element_label(root: Any, element: Any) -> str:
    if element is root:
        return "entire-document"
    ident = next((element.get(a) for a in _ID_ATTRIBUTES if element.get(a)), None)
    tag = element.tag.split("}", 1)[-1]
    where = root.getroottree().getpath(element)
    return f"element:{tag}" + (f"#{ident}" if ident else "") + f" ({where})"


def _resolve(root: Any, uri: str) -> list[Any]:
    if uri == "":
        return [root]
    if not uri.startswith("#"):
        return []
    value = uri[1:]
    found: list[Any] = []
    for attr in _ID_ATTRIBUTES:
        found += root.xpath(f"//*[@*[local-name() = '{attr}'] = $v]", v=value)
    return list(dict.fromkeys(found))


def _inside_signature(element: Any) -> bool:
    return any(a.tag in (f"{{{DS}}}Signature", f"{{{DS}}}Object") for a in element.iterancestors())


def _wrapping_problem(root: Any, signature: Any, uri: str, ref_type: str | None) -> str | None:
    """Why the element a reference names is not the one the document presents, if so."""
    targets = _resolve(root, uri)
    if len(targets) > 1:
        return f"the reference {uri!r} names {len(targets)} elements"
    if not targets:
        return f"the reference {uri!r} names no element of the document"
    target = targets[0]
    if ref_type == SIGNED_PROPERTIES_TYPE:
        # XAdES signed properties live in this signature's own ds:Object.
        return None if signature in target.iterancestors() else "signed properties elsewhere"
    own = {
        f"{{{DS}}}KeyInfo",
        f"{{{XADES}}}QualifyingProperties",
        f"{{{DS}}}SignatureProperties",
        f"{{{DS}}}SignatureProperty",
    }
    properties_object = (
        target.tag == f"{{{DS}}}Object"
        and len(target)
        and all(child.tag == f"{{{DS}}}SignatureProperties" for child in target)
    )
    if signature in target.iterancestors() and (
        properties_object or any(e.tag in own for e in (target, *target.iterancestors()))
    ):
        # The signature's own key info or properties (an e-invoice's SigningTime
        # object), not document content.
        return None
    if _inside_signature(target):
        return "the signed element is hidden inside a ds:Signature/ds:Object"
    if target is not root:
        twins = [
            e
            for e in root.iter(target.tag)
            if e is not target and not _inside_signature(e) and e is not signature
        ]
        if twins:
            return (
                f"the document presents another <{target.tag.split('}', 1)[-1]}> than the "
                "signed one"
            )
    return None


def _is_external(uri: str) -> bool:
    """A detached reference: data outside this document (a file, or an element of one)."""
    return uri != "" and not uri.startswith("#")


def _external_label(uri: str, data: Any) -> str:
    name, _, fragment = uri.partition("#")
    if isinstance(data, bytes):
        return f"file:{name}"
    return f"element:{data.tag.split('}', 1)[-1]}#{fragment} (in {name})"


def _verify_one(
    index: int, root: Any, signature: Any, policy: VerifyPolicy, base: Path | None = None
) -> SignatureVerdict:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import serialization
    from lxml import etree
    from signxml.exceptions import (
        InvalidCertificate,
        InvalidDigest,
        InvalidInput,
        InvalidSignature,
    )
    from signxml.verifier import SignatureConfiguration

    name = signature.get("Id")
    certs_b64 = signature.xpath("ds:KeyInfo/ds:X509Data/ds:X509Certificate/text()", namespaces=NS)
    if not certs_b64:
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            name=name,
            detail="no X509Certificate in KeyInfo",
        )
    try:
        certs = [cx509.load_der_x509_certificate(base64.b64decode(c)) for c in certs_b64]
    except ValueError as exc:
        return make_verdict(
            index, Indication.FAILED, SubIndication.FORMAT_FAILURE, name=name, detail=str(exc)
        )
    refs = signature.xpath("ds:SignedInfo/ds:Reference", namespaces=NS)
    external: dict[str, Any] = {}
    missing: list[str] = []

    def resolve(uri: str) -> Any:
        # A detached signature's data, relative to the signature's directory;
        # never a URL (no network), never an absolute path.
        from signxml.exceptions import InvalidInput

        from signkit.errors import DocumentError
        from signkit.formats.xml import resolve_external

        if base is None:
            raise InvalidInput(f"cannot resolve {uri} here")
        try:
            external[uri] = resolve_external(uri, base, _ID_ATTRIBUTES)
        except DocumentError as exc:
            missing.append(f"{uri}: {exc.message}")
            raise InvalidInput(exc.message) from None
        return external[uri]

    # The signer is the certificate whose key verifies; try each in KeyInfo order.
    verifier_cls = _verifier_class()
    schema_warnings: list[str] = []
    results: Any = None
    signer = certs[0]
    failure: tuple[Indication, SubIndication, str] | None = None
    for candidate in certs:
        verifier = verifier_cls()
        verifier.target = index
        try:
            config = SignatureConfiguration(
                expect_references=len(refs),
                require_x509=True,
                # signxml refuses SHA-1 unless told; our policy decides (and reports it).
                signature_methods=_allowed_signature_methods(policy),
                digest_algorithms=_allowed_digests(policy),
            )
            try:
                results = verifier.verify(
                    root, x509_cert=candidate, expect_config=config, uri_resolver=resolve
                )
            except etree.DocumentInvalid as exc:
                if not _known_schema_deviation(exc):
                    raise InvalidInput(f"not an XML Signature by its schema ({exc})") from None
                # Vietnamese e-invoices put <SigningTime> in the XMLDSig namespace
                # inside SignatureProperty, which the schema does not allow; the
                # signature itself is checked in full all the same.
                results = verifier.verify(
                    root,
                    x509_cert=candidate,
                    expect_config=config,
                    validate_schema=False,
                    uri_resolver=resolve,
                )
                schema_warnings.append(
                    "the Signature departs from the XMLDSig schema only by a SigningTime "
                    "element in its SignatureProperty (the e-invoice layout); checked in full"
                )
            signer, failure = candidate, None
            break
        except InvalidDigest as exc:
            failure = (Indication.FAILED, SubIndication.HASH_FAILURE, str(exc))
            signer = candidate
            break
        except InvalidSignature as exc:
            text = str(exc)
            if "algorithm" in text.lower() or "method" in text.lower():
                failure = (Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, text)
                break
            failure = (Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE, text)
        except InvalidInput as exc:
            if missing:
                failure = (
                    Indication.INDETERMINATE,
                    SubIndication.SIGNED_DATA_NOT_FOUND,
                    missing[-1],
                )
                break
            text = str(exc)
            sub = (
                SubIndication.WRAPPED_SIGNED_ELEMENT
                if "Ambiguous" in text
                else (SubIndication.FORMAT_FAILURE)
            )
            failure = (Indication.FAILED, sub, text)
            break
        except InvalidCertificate as exc:
            failure = (Indication.INDETERMINATE, SubIndication.CHAIN_CONSTRAINTS_FAILURE, str(exc))
            break
    signer_der = signer.public_bytes(serialization.Encoding.DER)
    details = _signer_details(signer, signer_der, signature)
    if failure is not None:
        ind, sub, text = failure
        intact = False if sub is SubIndication.HASH_FAILURE else None
        return make_verdict(index, ind, sub, name=name, detail=text, intact=intact, **details)
    results = results if isinstance(results, list) else [results]
    covered: list[str] = []
    signed_props = None
    for ref in refs:
        uri, ref_type = ref.get("URI", ""), ref.get("Type")
        if _is_external(uri):
            covered.append(_external_label(uri, external[uri]))
            continue
        problem = _wrapping_problem(root, signature, uri, ref_type)
        if problem is not None:
            return make_verdict(
                index,
                Indication.FAILED,
                SubIndication.WRAPPED_SIGNED_ELEMENT,
                name=name,
                detail=problem,
                intact=True,
                signature_valid=True,
                **details,
            )
        target = _resolve(root, uri)[0]
        if ref_type == SIGNED_PROPERTIES_TYPE or target.tag == f"{{{XADES}}}SignedProperties":
            signed_props = target
        elif signature in target.iterancestors():
            covered.append(f"signature's own {target.tag.split('}', 1)[-1]}")
        else:
            covered.append(_element_label(root, target))
    warnings: list[str] = list(schema_warnings)
    level = None
    claimed = None
    ts_time = None
    xades_props = signature.xpath(".//xades:SignedProperties", namespaces=NS)
    if xades_props and signed_props is None:
        warnings.append("XAdES SignedProperties present but not signed: their claims are ignored")
    if signed_props is not None:
        problem = _check_signing_certificate(signed_props, signer_der)
        if problem is not None:
            return make_verdict(
                index,
                Indication.INDETERMINATE,
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                name=name,
                detail=problem,
                intact=True,
                signature_valid=True,
                **details,
            )
        times = signed_props.xpath(".//xades:SigningTime/text()", namespaces=NS)
        claimed = times[0].strip() if times else None
        level = "B-B"
        ts_time, ts_warnings = _signature_timestamp(signature, policy)
        warnings += ts_warnings
        if ts_time is not None:
            level = "B-T"
    values = _xades_values(signature)
    if values.ocsps or values.crls:
        level = "B-LT" if level == "B-T" else level
    chain = validate_chain(
        signer_der,
        [c.public_bytes(serialization.Encoding.DER) for c in certs if c is not signer]
        + list(values.certs),
        policy,
        embedded_ocsps=values.ocsps,
        embedded_crls=values.crls,
    )
    warnings += chain.warnings
    if details["weak_algorithms"]:
        if policy.allow_weak:
            warnings.append(
                "weak algorithm accepted (--insecure-allow-weak): "
                + ", ".join(details["weak_algorithms"])
            )
    indication, sub = chain.indication, chain.sub_indication
    if details["weak_algorithms"] and not policy.allow_weak and indication is Indication.PASSED:
        indication, sub = Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE
    return make_verdict(
        index,
        indication,
        sub,
        name=name,
        intact=True,
        signature_valid=True,
        trusted=chain.trusted,
        claimed_signing_time=claimed,
        timestamp_time=ts_time,
        best_signature_time=ts_time or (policy.at.isoformat() if policy.at else None),
        coverage=", ".join(covered) or None,
        level=level,
        revocation=chain.revocation,
        warnings=warnings,
        detail=chain.detail,
        **details,
    )


C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def _signature_timestamp(signature: Any, policy: VerifyPolicy) -> tuple[str | None, list[str]]:
    """The time of the first XAdES SignatureTimeStamp that covers this signature value
    and validates to the configured trust; what was wrong with the others."""
    import asyncio

    from asn1crypto import cms, x509
    from lxml import etree
    from pyhanko_certvalidator import ValidationContext
    from signxml.algorithms import CanonicalizationMethod
    from signxml.processor import XMLSignatureProcessor

    warnings: list[str] = []
    value = signature.find(f"{{{DS}}}SignatureValue")
    for node in signature.xpath(".//xades:SignatureTimeStamp", namespaces=NS):
        method = node.find(f"{{{DS}}}CanonicalizationMethod")
        encoded = node.find(f"{{{XADES}}}EncapsulatedTimeStamp")
        try:
            algorithm = CanonicalizationMethod(
                method.get("Algorithm", C14N_10) if method is not None else C14N_10
            )
            detached = etree.fromstring(etree.tostring(value), parser=_safe_parser())
            covered = XMLSignatureProcessor()._c14n(detached, algorithm=algorithm)
            token = cms.ContentInfo.load(base64.b64decode(encoded.text or ""))
            signed = token["content"]
            backend = None
            if not policy.offline:
                from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

                backend = AIOHttpFetcherBackend()
            context = ValidationContext(
                trust_roots=[x509.Certificate.load(d) for d in policy.anchors],
                allow_fetching=not policy.offline,
                fetcher_backend=backend,
                revocation_mode="soft-fail",
                moment=policy.at or policy.now,
            )

            def imprint(algo: str, data: bytes = covered) -> bytes:
                return hashlib.new(algo, data).digest()

            status = asyncio.run(_validate_token(signed, context, imprint, backend))
        except Exception as exc:  # any malformed or non-matching token is just not counted
            warnings.append(f"XAdES signature time-stamp ignored ({type(exc).__name__}: {exc})")
            continue
        trusted = (
            status.get("validation_path") is not None and status.get("trust_problem_indic") is None
        )
        if status.get("intact") and status.get("valid") and trusted:
            return status["timestamp"].isoformat(), warnings
        warnings.append(
            "XAdES signature time-stamp ignored (it does not cover this signature value, "
            "or its TSA is not trusted)"
        )
    return None, warnings


async def _validate_token(signed: Any, context: Any, imprint: Any, backend: Any) -> Any:
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data

    try:
        return await validate_tst_signed_data(signed, context, imprint)
    finally:
        # Close the HTTP session in the loop that opened it.
        if backend is not None:
            await backend.close()


def _allowed_signature_methods(policy: VerifyPolicy) -> Any:
    """Every public-key method: SHA-1 is let through signxml so that the verdict can say
    INDETERMINATE/CRYPTO_CONSTRAINTS_FAILURE (or accept it with --insecure-allow-weak)."""
    from signxml.algorithms import SignatureMethod

    return frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC"))


def _allowed_digests(policy: VerifyPolicy) -> Any:
    """Every digest, for the same reason."""
    from signxml.algorithms import DigestAlgorithm

    return frozenset(DigestAlgorithm)


def _check_signing_certificate(signed_props: Any, signer_der: bytes) -> str | None:
    """XAdES SigningCertificate(V2): its digest must be of the certificate that verified."""
    cert_digests = signed_props.xpath(
        ".//xades:SigningCertificateV2/xades:Cert/xades:CertDigest"
        " | .//xades:SigningCertificate/xades:Cert/xades:CertDigest",
        namespaces=NS,
    )
    if not cert_digests:
        return "XAdES SignedProperties without SigningCertificate(V2)"
    for digest in cert_digests:
        method = digest.find(f"{{{DS}}}DigestMethod")
        value = digest.find(f"{{{DS}}}DigestValue")
        algo = _DIGESTS.get(method.get("Algorithm", "") if method is not None else "")
        if algo is None or value is None or value.text is None:
            continue
        if hashlib.new(algo, signer_der).digest() == base64.b64decode(value.text):
            return None
    return "the XAdES SigningCertificate digest is not that of the signing certificate"


def _signer_details(cert: Any, der: bytes, signature: Any) -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import dsa, rsa

    key = cert.public_key()
    key_algo = (
        "rsa"
        if isinstance(key, rsa.RSAPublicKey)
        else ("dsa" if isinstance(key, dsa.DSAPublicKey) else "ec")
    )
    method = signature.xpath("ds:SignedInfo/ds:SignatureMethod/@Algorithm", namespaces=NS)
    digests = signature.xpath(
        "ds:SignedInfo/ds:Reference/ds:DigestMethod/@Algorithm", namespaces=NS
    )
    sig_uri = str(method[0]) if method else ""
    weak = weak_algorithms("", sig_uri.rsplit("#", 1)[-1], key_algo, getattr(key, "key_size", 0))
    for uri in digests:
        if _DIGESTS.get(str(uri)) == "sha1":
            weak.append("digest SHA1")
    return {
        "signer_subject": cert.subject.rfc4514_string(),
        "signer_issuer": cert.issuer.rfc4514_string(),
        "signer_serial": format(cert.serial_number, "X"),
        "signer_sha256": hashlib.sha256(der).hexdigest(),
        "weak_algorithms": list(dict.fromkeys(weak)),
    }


@dataclass(frozen=True)
class _XadesValues:
    certs: tuple[bytes, ...]
    ocsps: tuple[bytes, ...]
    crls: tuple[bytes, ...]


def _xades_values(signature: Any) -> _XadesValues:
    """The validation data a XAdES B-LT signature carries in its unsigned
    properties (CertificateValues, RevocationValues): used like a PDF's DSS,
    so --offline can judge revocation from them."""
    import base64
    import binascii

    def grab(path: str) -> tuple[bytes, ...]:
        out = []
        for text in signature.xpath(path, namespaces=NS):
            try:
                out.append(base64.b64decode("".join(str(text).split()), validate=True))
            except (binascii.Error, ValueError):
                continue  # unreadable entries are ignored, never trusted
        return tuple(out)

    usp = ".//xades:UnsignedSignatureProperties"
    return _XadesValues(
        certs=grab(f"{usp}/xades:CertificateValues/xades:EncapsulatedX509Certificate/text()"),
        ocsps=grab(
            f"{usp}/xades:RevocationValues/xades:OCSPValues/xades:EncapsulatedOCSPValue/text()"
        ),
        crls=grab(
            f"{usp}/xades:RevocationValues/xades:CRLValues/xades:EncapsulatedCRLValue/text()"
        ),
    )


def _known_schema_deviation(exc: Exception) -> bool:
    """The one departure from the XMLDSig schema that real e-invoices make:
    a SigningTime element (in the XMLDSig namespace) inside SignatureProperty."""
    log = getattr(exc, "error_log", None)
    errors = list(log) if log is not None else []
    return bool(errors) and all(
        "SigningTime" in e.message and "This element is not expected" in e.message for e in errors
    )
