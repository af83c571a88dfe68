"""XML signature verdicts (XMLDSig, XAdES) on top of the one XML core.

Parsing, reference processing, canonicalisation and the signature value are
``signkit.formats.xml``'s, the code signing uses for its self-check, so the
two cannot disagree. This module turns what the core established into EN
319 102-1 verdicts, one per ds:Signature (counter-signatures included):

- core validation: the SignatureValue over SignedInfo and every SignedInfo
  reference (ds:Manifest references are reported, not required);
- what is signed, by position and namespace, and signature wrapping: an Id
  that names several elements, a signed element hidden in another
  signature's ds:Object, a same-local-name twin a reader could take for the
  signed element, a reference whose Type says ds:Object but names document
  content, a counter-signature over anything but its parent's value;
- XAdES: the SigningCertificate (v1 or V2) must name the signer; time-stamps
  must cover what they claim to (a signature or content time-stamp that does
  not, or a token copied from another time-stamp, is FAILED; an archive or
  validation-data time-stamp over unsigned data changed since is not counted);
- the chain, validity and revocation, by the same policy as for PDF.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

from signkit.errors import InputError
from signkit.formats.xml import coverage, xades
from signkit.formats.xml.algorithms import DIGESTS, SIGNATURES
from signkit.formats.xml.core import (
    CoreResult,
    KeyCandidate,
    ReferenceCheck,
    check_signature,
    signatures_of,
)
from signkit.formats.xml.parse import MAX_BYTES, XmlDocument, parse
from signkit.formats.xml.references import (
    AmbiguousReferenceError,
    Context,
    SignatureFormatError,
    SignedDataNotFoundError,
    UnsupportedAlgorithmError,
)
from signkit.fsio import read_within
from signkit.pki.chain import validate_chain
from signkit.verify.policy import VerifyPolicy, weak_algorithms
from signkit.verify.verdict import (
    DocumentVerdict,
    Indication,
    SignatureVerdict,
    SubIndication,
    make_verdict,
)

if TYPE_CHECKING:
    from asn1crypto import cms
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from lxml.etree import _Element
    from pyhanko_certvalidator import ValidationContext


class _Details(TypedDict):
    """The signer's part of a verdict."""

    signer_subject: NotRequired[str]
    signer_issuer: NotRequired[str]
    signer_serial: NotRequired[str]
    signer_sha256: NotRequired[str]
    weak_algorithms: list[str]


def preload() -> None:
    """Import the XML stack (before worker processes fork)."""
    import lxml.etree  # noqa: F401

    from signkit.formats.xml import core  # noqa: F401


def parse_safely(data: bytes, source: str) -> _Element:
    """The document element of ``data``, parsed by the one XML parser."""
    return parse(data, source).root


def verify_xml(path: Path, policy: VerifyPolicy) -> DocumentVerdict:
    """Verify every ds:Signature of one XML document."""
    try:
        with path.open("rb") as fh:
            data = read_within(fh, MAX_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    doc = parse(data, str(path))
    if doc.root.tag.rpartition("}")[2] == "edXML":
        # a package whose root the first bytes did not show (a long prolog)
        from signkit.verify.edxml import verify_package

        return verify_package(doc, data, policy)
    verdicts = signature_verdicts(doc, signatures_of(doc), policy, path.resolve().parent)
    return DocumentVerdict.of(str(path), "xml", verdicts, hashlib.sha256(data).hexdigest())


def verify_xml_data(
    data: bytes, source: str, policy: VerifyPolicy, *, base: Path | None
) -> DocumentVerdict:
    """``verify_xml`` on bytes already read (``base``: where detached references
    resolve, None for none)."""
    doc = parse(data, source)
    verdicts = signature_verdicts(doc, signatures_of(doc), policy, base)
    return DocumentVerdict.of(source, "xml", verdicts, hashlib.sha256(data).hexdigest())


def signature_verdicts(
    doc: XmlDocument, signatures: list[_Element], policy: VerifyPolicy, base: Path | None
) -> list[SignatureVerdict]:
    """One verdict per ds:Signature of ``signatures`` (elements of ``doc``)."""
    return [_verify_one(i, doc, sig, policy, base) for i, sig in enumerate(signatures)]


@dataclass
class _Findings:
    """Problems found so far for one signature; the worst decides."""

    failed: list[tuple[SubIndication, str]] = field(default_factory=list)
    indeterminate: list[tuple[SubIndication, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def worst(self) -> tuple[Indication, SubIndication, str] | None:
        if self.failed:
            return (Indication.FAILED, *self.failed[0])
        if self.indeterminate:
            return (Indication.INDETERMINATE, *self.indeterminate[0])
        return None


def _verify_one(
    index: int, doc: XmlDocument, signature: _Element, policy: VerifyPolicy, base: Path | None
) -> SignatureVerdict:
    name = signature.get("Id")
    certs, ocsps, crls = xades.encapsulated_values(signature)
    try:
        core = check_signature(doc, signature, base=base, extra_certificates=certs)
    except SignatureFormatError as exc:
        return make_verdict(
            index, Indication.FAILED, SubIndication.FORMAT_FAILURE, name=name, detail=exc.message
        )
    except UnsupportedAlgorithmError as exc:
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            name=name,
            detail=exc.message,
        )
    if not core.candidates:
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.FORMAT_FAILURE,
            name=name,
            detail="no key to check the signature with: KeyInfo carries no certificate or key",
        )
    if core.signer is None:
        first = next((c.certificate for c in core.candidates if c.certificate), None)
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            name=name,
            intact=None,
            signature_valid=False,
            detail="the signature value does not verify with any key the signature carries",
            **(_signer_details(first, core) if first else _Details(weak_algorithms=[])),
        )
    found = _Findings()
    ctx = Context(doc=doc, signature=signature, base=base)
    covered = _references(core, signature, doc, found)
    counter = coverage.counter_signature_problem(core, signature)
    if counter is not None:
        found.failed.append((SubIndication.WRAPPED_SIGNED_ELEMENT, counter))
    props = xades.signed_properties(signature)
    signer_der = core.signer.certificate
    level = None
    claimed = None
    ts_time = None
    archived: list[str] = []
    if props is not None and not any(
        r.target is not None and r.target.element is props for r in core.references
    ):
        found.warnings.append(
            "XAdES SignedProperties present but not signed: their claims are ignored"
        )
        props = None
    if props is not None:
        level = "B-B"
        claimed = xades.signing_time(props)
        signer_der = _signing_certificate(props, core, signer_der, found)
        ts_time, stamp_levels, archived = _stamps(signature, ctx, policy, found)
        level = stamp_levels or level
        if (ocsps or crls) and level in ("B-T", "B-LTA"):
            level = "B-LT" if level == "B-T" else level
    manifest = [_manifest_line(r) for r in core.manifest_references]
    if manifest:
        found.warnings.append(
            "ds:Manifest references (not part of core validation): " + "; ".join(manifest)
        )
    details = _signer_details(signer_der, core) if signer_der else _key_details(core)
    worst = found.worst()
    if worst is not None:
        indication, sub, text = worst
        return make_verdict(
            index,
            indication,
            sub,
            name=name,
            detail=text,
            intact=_intact(core),
            signature_valid=True,
            coverage=", ".join(covered) or None,
            warnings=found.warnings,
            **details,
        )
    if signer_der is None:
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            name=name,
            intact=True,
            signature_valid=True,
            trusted=False,
            coverage=", ".join(covered) or None,
            level=level,
            claimed_signing_time=claimed,
            warnings=found.warnings,
            detail="the signature carries a public key but no certificate: nothing ties the "
            "key to a signer",
            **details,
        )
    if not _readable(signer_der):
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
            name=name,
            intact=True,
            signature_valid=True,
            coverage=", ".join(covered) or None,
            warnings=found.warnings,
            detail="the signer certificate has an extension that cannot be decoded",
            **details,
        )
    chain = validate_chain(
        signer_der,
        [
            c
            for c in dict.fromkeys((*core.certificates, *certs))
            if c != signer_der and _readable(c)
        ],
        policy,
        embedded_ocsps=[o for o in ocsps if _readable_ocsp(o)],
        embedded_crls=crls,
    )
    found.warnings += chain.warnings
    if details["weak_algorithms"] and policy.allow_weak:
        found.warnings.append(
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
        archive_timestamp_times=archived,
        best_signature_time=ts_time or (policy.at.isoformat() if policy.at else None),
        coverage=", ".join(covered) or None,
        level=level,
        revocation=chain.revocation,
        revocation_source=chain.revocation_source,
        chain=list(chain.chain_subjects),
        warnings=found.warnings,
        detail=chain.detail,
        **details,
    )


# ---------------------------------------------------------------- what is signed


def _references(
    core: CoreResult, signature: _Element, doc: XmlDocument, found: _Findings
) -> list[str]:
    """Judge every SignedInfo reference; what each covers, for the report."""
    covered: list[str] = []
    for ref in core.references:
        problem = ref.problem
        if isinstance(problem, AmbiguousReferenceError):
            found.failed.append((SubIndication.WRAPPED_SIGNED_ELEMENT, problem.message))
        elif isinstance(problem, SignedDataNotFoundError):
            found.indeterminate.append((SubIndication.SIGNED_DATA_NOT_FOUND, problem.message))
        elif isinstance(problem, UnsupportedAlgorithmError):
            found.indeterminate.append((SubIndication.CRYPTO_CONSTRAINTS_FAILURE, problem.message))
        elif problem is not None:
            found.failed.append((SubIndication.FORMAT_FAILURE, problem.message))
        elif not ref.matches:
            found.failed.append(
                (
                    SubIndication.HASH_FAILURE,
                    f"reference {ref.uri or '(document)'} does not match its digest",
                )
            )
        if ref.target is None:
            continue
        label = coverage.label(ref, signature, doc)
        if label:
            covered.append(label)
        wrapped = coverage.wrapping(ref, signature, doc)
        if wrapped is not None:
            found.failed.append((SubIndication.WRAPPED_SIGNED_ELEMENT, wrapped))
    return covered


def _intact(core: CoreResult) -> bool | None:
    """Every reference matches (True), one does not (False), or one could not be
    computed (None: unknown)."""
    if any(r.problem is None and not r.matches for r in core.references):
        return False
    return True if core.references_ok else None


def _manifest_line(ref: ReferenceCheck) -> str:
    if ref.problem is not None:
        return f"{ref.uri}: {ref.problem.message}"
    return f"{ref.uri}: {'matches' if ref.matches else 'does not match its digest'}"


# ---------------------------------------------------------------- XAdES


def _signing_certificate(
    props: _Element, core: CoreResult, signer_der: bytes | None, found: _Findings
) -> bytes | None:
    """The signer certificate the SignedProperties name (it must be the signer's)."""
    digests = xades.signing_certificates(props)
    if digests is None:
        found.indeterminate.append(
            (
                SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                "XAdES SignedProperties without SigningCertificate(V2)",
            )
        )
        return signer_der
    if signer_der is not None:
        if not xades.names_certificate(digests, signer_der):
            found.indeterminate.append(
                (
                    SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
                    "the XAdES SigningCertificate digest is not that of the signing certificate",
                )
            )
        return signer_der
    # A bare key verified: the certificate is the one the properties name, if carried.
    assert core.signer is not None  # noqa: S101 - callers check
    for candidate in core.candidates:
        der = candidate.certificate
        if der and xades.names_certificate(digests, der) and _same_key(candidate, core):
            return der
    return None


def _same_key(candidate: KeyCandidate, core: CoreResult) -> bool:
    try:
        key = candidate.key
    except SignatureFormatError:
        return False  # an unreadable certificate names no key
    from cryptography.hazmat.primitives import serialization

    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert core.signer is not None  # noqa: S101 - callers check
    return bool(key.public_bytes(der, spki) == core.signer.key.public_bytes(der, spki))


def _stamps(
    signature: _Element, ctx: Context, policy: VerifyPolicy, found: _Findings
) -> tuple[str | None, str | None, list[str]]:
    """Check every time-stamp's imprint; (time of the first trusted signature
    time-stamp, level the time-stamps reach, times of the trusted archive
    time-stamps)."""
    stamps = xades.stamps(signature, ctx)
    seen: dict[bytes, int] = {}
    for stamp in stamps:
        for token in stamp.tokens:
            seen[token] = seen.get(token, 0) + 1
    ts_time = None
    archived: list[str] = []
    for stamp in stamps:
        if stamp.message is None:
            found.warnings.append(f"XAdES {stamp.kind} not checked ({stamp.problem})")
            continue
        for token in stamp.tokens:
            if not xades.covers(token, stamp.message):
                signed_data = stamp.kind in (xades.SIGNATURE_TIMESTAMP, *xades.CONTENT_TIMESTAMPS)
                if signed_data or seen[token] > 1:
                    found.failed.append(
                        (
                            SubIndication.TIMESTAMP_MISMATCH,
                            f"the XAdES {stamp.kind} does not cover this signature (its imprint "
                            "does not match: a time-stamp from elsewhere)",
                        )
                    )
                else:
                    found.warnings.append(
                        f"XAdES {stamp.kind} ignored: what it covers changed after it was made"
                    )
                continue
            if stamp.kind == xades.SIGNATURE_TIMESTAMP and ts_time is None:
                ts_time = _token_time(token, stamp.message, policy, found)
            elif stamp.kind == xades.ARCHIVE_TIMESTAMP:
                when = _token_time(token, stamp.message, policy, found)
                if when is not None:
                    archived.append(when)
    level = None
    if ts_time is not None:
        level = "B-LTA" if archived else "B-T"
    return ts_time, level, archived


def _token_time(token: bytes, message: bytes, policy: VerifyPolicy, found: _Findings) -> str | None:
    """The time of a time-stamp token whose TSA signature holds and chains to the
    configured trust (None otherwise, with a warning)."""
    import asyncio

    from asn1crypto import cms, x509
    from pyhanko_certvalidator import ValidationContext

    try:
        signed = cms.ContentInfo.load(token)["content"]
        backend = None
        if not policy.offline:
            from signkit.pki.http import fetcher_backend

            backend = fetcher_backend()
        context = ValidationContext(
            trust_roots=[x509.Certificate.load(d) for d in policy.anchors],
            allow_fetching=not policy.offline,
            fetcher_backend=backend,
            revocation_mode="soft-fail",
            moment=policy.at or policy.now,
        )

        def imprint(algo: str, data: bytes = message) -> bytes:
            return hashlib.new(algo, data).digest()

        status = asyncio.run(_validate_token(signed, context, imprint, backend))
    except Exception as exc:  # any malformed token is just not counted
        found.warnings.append(f"XAdES time-stamp ignored ({type(exc).__name__}: {exc})")
        return None
    trusted = (
        status.get("validation_path") is not None and status.get("trust_problem_indic") is None
    )
    if status.get("intact") and status.get("valid") and trusted:
        return str(status["timestamp"].isoformat())
    found.warnings.append("XAdES time-stamp ignored (its TSA is not trusted)")
    return None


async def _validate_token(
    signed: cms.SignedData,
    context: ValidationContext,
    imprint: Callable[[str], bytes],
    backend: Any,  # pyHanko's fetcher backend (its close() is untyped)
) -> Any:  # pyHanko's status dictionary
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data

    try:
        return await validate_tst_signed_data(signed, context, imprint)
    finally:
        # Close the HTTP session in the loop that opened it.
        if backend is not None:
            await backend.close()


# ---------------------------------------------------------------- report details


def _readable_ocsp(der: bytes) -> bool:
    """The OCSP response and the certificates it carries decode in full."""
    from asn1crypto import ocsp

    try:
        response = ocsp.OCSPResponse.load(der)
        basic = response["response_bytes"]["response"].parsed
        certs = basic["certs"]
        return all(_readable(c.dump()) for c in certs) if certs.native is not None else True
    except (ValueError, TypeError, KeyError):
        return False


@functools.lru_cache(maxsize=256)
def _readable(der: bytes) -> bool:
    """The certificate decodes in full, extensions included (the path validator
    decodes them lazily and would stop on a malformed one; such a certificate is
    left out of path building, never trusted). A batch's documents carry the
    same few certificates: each is decoded once per process, keyed by its bytes."""
    from asn1crypto import x509

    try:
        cert = x509.Certificate.load(der)
        for ext in cert["tbs_certificate"]["extensions"]:
            _ = ext["extn_value"].parsed
        _ = cert.public_key.native
    except (ValueError, TypeError, KeyError):
        return False
    return True


def _signer_details(der: bytes, core: CoreResult) -> _Details:
    subject, issuer, serial, key = _certificate_facts(der)
    return {
        "signer_subject": subject,
        "signer_issuer": issuer,
        "signer_serial": serial,
        "signer_sha256": hashlib.sha256(der).hexdigest(),
        "weak_algorithms": _weak(core, key),
    }


@functools.lru_cache(maxsize=256)
def _certificate_facts(der: bytes) -> tuple[str, str, str, PublicKeyTypes]:
    """Subject, issuer, serial (hex) and public key of a certificate, read once
    per process (keyed by its bytes)."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return (
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        format(cert.serial_number, "X"),
        cert.public_key(),
    )


def _key_details(core: CoreResult) -> _Details:
    assert core.signer is not None  # noqa: S101 - callers check
    return {"weak_algorithms": _weak(core, core.signer.key)}


def _weak(core: CoreResult, key: PublicKeyTypes) -> list[str]:
    from cryptography.hazmat.primitives.asymmetric import dsa, rsa

    algo = SIGNATURES[core.method_uri]
    key_algo = (
        "rsa"
        if isinstance(key, rsa.RSAPublicKey)
        else ("dsa" if isinstance(key, dsa.DSAPublicKey) else "ec")
    )
    weak = weak_algorithms(
        "", core.method_uri.rsplit("#", 1)[-1], key_algo, getattr(key, "key_size", 0)
    )
    if algo.digest == "sha1" and not any("sha1" in w.lower() for w in weak):
        weak.append(f"signature algorithm {core.method_uri.rsplit('#', 1)[-1]}")
    for uri in core.digests_used:
        if DIGESTS.get(uri) == "sha1":
            weak.append("digest SHA1")
    return list(dict.fromkeys(weak))
