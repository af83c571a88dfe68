"""PDF signature verification on pyHanko's EN 319 102-1 processes.

Per signature the process matches what the signature offers: basic
validation (B-B), validation with time (a signature time-stamp: B-T, B-LT),
or long-term validation (document time-stamps after it: B-LTA). pyHanko's
AdES status and sub-indication are kept; on top, signkit judges what AdES
leaves to policy or to the PDF layer: changes after signing
(``pdf_changes``), the signature time-stamp's own integrity, and document
time-stamps, which are judged as time-stamps (``pdf_timestamps``). A failed
digest, signature value or forbidden change is FAILED whatever the chain.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from signkit import patches
from signkit.errors import InputError, InputFormatError
from signkit.faults import describe, library_fault
from signkit.verify.pdf_ades import integrity, sub_indication, validate
from signkit.verify.pdf_changes import ChangeReport, review_changes
from signkit.verify.policy import (
    VerifyPolicy,
    weak_algorithms,
)
from signkit.verify.policy import moment as validation_moment
from signkit.verify.verdict import (
    DocumentVerdict,
    Indication,
    SignatureVerdict,
    SubIndication,
    make_verdict,
)

EXTENSIONS = (".pdf",)


def preload() -> None:
    """Import the PDF validation stack (before worker processes fork, so they share it)."""
    import pyhanko.sign.validation.ades
    import pyhanko.sign.validation.pdf_embedded  # noqa: F401
    from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: F401

    patches.install()


def verify_pdf(path: Path, policy: VerifyPolicy) -> DocumentVerdict:
    """Verify every signature and document time-stamp of one PDF.

    Unreadable files raise InputError; a signature that cannot be read or
    checked gets its own verdict and does not hide the others.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    return verify_pdf_data(data, str(path), policy)


def verify_pdf_data(data: bytes, source: str, policy: VerifyPolicy) -> DocumentVerdict:
    """``verify_pdf`` on bytes already read (an attachment of a package)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from signkit.formats.pdf.encryption import OPEN_HINT, unlock_to_read
    from signkit.verify.pdf_timestamps import is_document_timestamp, verify_document_timestamp

    patches.install()
    if not data.lstrip()[:5] == b"%PDF-":
        raise InputFormatError("not a PDF (no %PDF- header)", subject=source)
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            unlock_to_read(reader, source, policy.password, hint=OPEN_HINT)
        found = _signatures(reader)
        context = _DocContext.read(reader, policy)
    except InputFormatError:
        raise
    except Exception as exc:
        if not library_fault(exc):
            raise
        raise InputFormatError(f"malformed PDF ({_reason(exc)})", subject=source) from None
    timestamps = [s for _, s in found if not isinstance(s, str) and is_document_timestamp(s)]
    context = replace(context, timestamps=tuple(timestamps))
    parts: list[Any] = []
    verdicts: list[SignatureVerdict] = []
    for index, (name, sig) in enumerate(found):
        if isinstance(sig, str):
            verdicts.append(_unreadable(index, name, sig))
        elif is_document_timestamp(sig):
            verdicts.append(_guarded(index, sig, policy, context, verify_document_timestamp))
        else:
            verdicts.append(
                _guarded(
                    index,
                    sig,
                    policy,
                    context,
                    lambda i, s, p, d: _verify_one(i, s, p, d, parts),
                )
            )
    _note_appended_bytes(data, found, verdicts)
    verdict = DocumentVerdict.of(source, "pdf", verdicts, hashlib.sha256(data).hexdigest())
    verdict.etsi = parts
    return verdict


def _note_appended_bytes(data: bytes, found: list[Any], verdicts: list[SignatureVerdict]) -> None:
    """Bytes after the last signed revision that are no revision of their own
    (no cross-reference section: nothing a reader shows) change no verdict,
    but a person should know they are there and that no signature covers them."""
    ends = []
    for index, (_name, sig) in enumerate(found):
        if isinstance(sig, str):
            continue
        try:
            _a, _b, start, length = (int(v) for v in sig.byte_range)
        except (TypeError, ValueError, KeyError, AttributeError):
            continue
        ends.append((start + length, index))
    if not ends:
        return
    end, index = max(ends)
    tail = data[end:]
    if tail.strip() and b"startxref" not in tail:
        verdicts[index].warnings.append(
            f"{len(tail)} bytes were appended after the last signed revision; "
            "no signature covers them"
        )


def _reason(exc: BaseException) -> str:
    from pyhanko.pdf_utils.misc import PdfError

    return str(exc) if isinstance(exc, PdfError) and str(exc) else describe(exc)


def _signatures(reader: Any) -> list[tuple[str, Any]]:
    """(field name, EmbeddedPdfSignature or why it cannot be read), in signing order.

    pyHanko's own list stops at the first unreadable signature and skips
    unknown SubFilters; here each filled signature field counts.
    """
    from pyhanko.sign.fields import enumerate_sig_fields
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

    found: list[tuple[int, str, Any]] = []
    for position, (name, _value, field_ref) in enumerate(
        enumerate_sig_fields(reader, filled_status=True)
    ):
        try:
            sig = EmbeddedPdfSignature(reader, field_ref.get_object(), name)
            found.append((sig.signed_revision, str(name), sig))
        except Exception as exc:
            if not library_fault(exc):
                raise
            found.append(((1 << 30) + position, str(name), f"cannot be read ({_reason(exc)})"))
    found.sort(key=lambda item: item[0])
    return [(name, sig) for _, name, sig in found]


def _unreadable(index: int, name: str, why: str) -> SignatureVerdict:
    return make_verdict(
        index,
        Indication.FAILED,
        SubIndication.FORMAT_FAILURE,
        name=name,
        detail=f"the signature {why}",
    )


@dataclass(frozen=True)
class _DocContext:
    """What the whole document offers every signature: DSS data, document time-stamps."""

    reader: Any
    knowledge: Any
    has_revinfo: bool
    timestamps: tuple[Any, ...] = ()
    checks: dict[int, Any] = field(default_factory=dict)
    """Time-stamp token checks, by signature object (which live as long as the document)."""

    @classmethod
    def read(cls, reader: Any, policy: VerifyPolicy) -> _DocContext:
        from asn1crypto import x509
        from pyhanko.sign.validation.ades import _dss_to_local_knowledge
        from pyhanko.sign.validation.policy_decl import LocalKnowledge

        try:
            knowledge = _dss_to_local_knowledge(reader=reader)
        except Exception as exc:  # a DSS that cannot be read offers nothing
            if not library_fault(exc):
                raise
            knowledge = LocalKnowledge()
        extra = [x509.Certificate.load(der) for der in policy.intermediates]
        if extra:
            knowledge = LocalKnowledge(
                known_ocsps=list(knowledge.known_ocsps),
                known_crls=list(knowledge.known_crls),
                known_certs=[*knowledge.known_certs, *extra],
            )
        return cls(
            reader=reader,
            knowledge=knowledge,
            has_revinfo=bool(knowledge.known_ocsps or knowledge.known_crls),
        )

    def later_timestamps(self, revision: int) -> list[Any]:
        """Document time-stamps added after ``revision`` whose imprint holds."""
        from signkit.verify.pdf_timestamps import imprint_holds

        return [
            ts
            for ts in self.timestamps
            if ts.signed_revision > revision and imprint_holds(ts, self.checks)
        ]


_SHORT = {
    "common_name": "CN",
    "organization_name": "O",
    "organizational_unit_name": "OU",
    "country_name": "C",
    "locality_name": "L",
    "state_or_province_name": "ST",
    "user_id": "UID",
    "title": "title",
    "serial_number": "serialNumber",
    "email_address": "emailAddress",
}


def rfc4514(name: Any) -> str:
    """CN=…,O=…,C=VN with Unicode kept, the form the cert check and openssl print."""
    parts = []
    for rdn in reversed(name.chosen):
        for attr in rdn:
            key = attr["type"].native
            value = str(attr["value"].native).replace(",", "\\,")
            parts.append(f"{_SHORT.get(key, attr['type'].dotted)}={value}")
    return ",".join(parts)


def certificate_facts(cert: Any) -> dict[str, Any]:
    """Subject, issuer, serial and fingerprint of a certificate, for a verdict."""
    return {
        "signer_subject": rfc4514(cert.subject),
        "signer_issuer": rfc4514(cert.issuer),
        "signer_serial": format(cert.serial_number, "X"),
        "signer_sha256": hashlib.sha256(cert.dump()).hexdigest(),
    }


def _claimed_signer(sig: Any) -> dict[str, Any]:
    """The certificate the signer identifier names, when pyHanko refused to pick it."""
    try:
        sid = sig.signer_info["sid"].chosen
        for choice in sig.signed_data["certificates"]:
            cert = choice.chosen
            if cert.serial_number == sid["serial_number"].native and cert.issuer == sid["issuer"]:
                return certificate_facts(cert)
    except (KeyError, ValueError, TypeError):
        pass
    return {}


def _guarded(
    index: int,
    sig: Any,
    policy: VerifyPolicy,
    doc: _DocContext,
    judge: Callable[[int, Any, VerifyPolicy, _DocContext], SignatureVerdict],
) -> SignatureVerdict:
    """One signature's verdict; what the libraries cannot make sense of is FAILED."""
    name = None
    try:
        name = str(sig.field_name)
        return judge(index, sig, policy, doc)
    except Exception as exc:  # a malformed signature must not hide the others
        if not library_fault(exc):
            raise
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.FORMAT_FAILURE,
            name=name,
            detail=f"the signature cannot be checked ({describe(exc)})",
            **_claimed_signer(sig),
        )


def _algorithm_problem(sig: Any) -> tuple[Indication, SubIndication, str] | None:
    """A digest algorithm that is not one (FAILED) or that nobody here knows
    (INDETERMINATE), before anything tries to compute with it."""
    from asn1crypto import algos
    from pyhanko_certvalidator.util import get_pyca_cryptography_hash

    oid = sig.signer_info["digest_algorithm"]["algorithm"]
    if oid.native == oid.dotted:
        as_signature = algos.SignedDigestAlgorithmId(oid.dotted).native
        if as_signature != oid.dotted:
            return (
                Indication.FAILED,
                SubIndication.FORMAT_FAILURE,
                f"the signature names a signature algorithm ({as_signature}) where its "
                "digest algorithm belongs",
            )
        return (
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            f"unknown digest algorithm {oid.dotted}",
        )
    try:
        get_pyca_cryptography_hash(oid.native)
    except (AttributeError, ValueError):
        return (
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            f"digest algorithm {oid.native} is not supported",
        )
    mechanism = sig.signer_info["signature_algorithm"]
    try:
        mechanism.signature_algo  # noqa: B018 - raises for an algorithm nobody here knows
    except ValueError:
        oid = mechanism["algorithm"]
        return (
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            f"unknown signature algorithm {oid.dotted}"
            + ("" if oid.native == oid.dotted else f" ({oid.native})"),
        )
    subfilter = sig.sig_object.get("/SubFilter")
    if subfilter not in ("/adbe.pkcs7.detached", "/ETSI.CAdES.detached"):
        return (
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            f"signatures of the {subfilter} kind are not checked",
        )
    return None


def _verify_one(
    index: int, sig: Any, policy: VerifyPolicy, doc: _DocContext, etsi_parts: list[Any]
) -> SignatureVerdict:
    """A signature's verdict (``etsi_parts`` collects its ETSI report part)."""
    from pyhanko.sign.validation.errors import SignatureValidationError

    name = str(sig.field_name)
    problem = _algorithm_problem(sig)
    if problem is not None:
        return make_verdict(
            index, problem[0], problem[1], name=name, detail=problem[2], **_claimed_signer(sig)
        )
    try:
        details = _describe(sig, doc)
    except SignatureValidationError as exc:
        # e.g. a signer certificate that is not the one the signed attributes name
        ades = getattr(exc, "ades_subindication", None)
        return make_verdict(
            index,
            Indication(ades.status.name) if ades is not None else Indication.FAILED,
            sub_indication(ades) if ades is not None else SubIndication.FORMAT_FAILURE,
            name=name,
            signature_valid=False,
            detail=str(exc)[:300],
            **_claimed_signer(sig),
        )
    # Not a field of the verdict: it decides the verdict below.
    timestamp_problem = details.pop("timestamp_problem")
    try:
        sig.compute_integrity_info(diff_policy=None, skip_diff=True)
    except (SignatureValidationError, ValueError, KeyError) as exc:
        why = (
            str(exc)
            if isinstance(exc, SignatureValidationError)
            else f"the signed byte range cannot be read ({describe(exc)})"
        )
        return make_verdict(
            index, Indication.FAILED, SubIndication.FORMAT_FAILURE, detail=why, **details
        )
    changes = _changes(sig, policy, details)
    warnings: list[str] = []
    result, indication, sub, revocation = validate(sig, policy, doc.knowledge, details, warnings)
    status = result.api_status
    intact = bool(status.intact) if status is not None else None
    valid = bool(status.valid) if status is not None else None
    trusted = status is not None and status.validation_path is not None
    chain = (
        [rfc4514(c.subject) for c in status.validation_path.iter_certs(include_root=True)][::-1]
        if trusted
        else []
    )
    source = None
    if revocation in ("good", "revoked"):
        source = "embedded" if doc.has_revinfo else "fetched"
    if intact is None or valid is None:
        intact, valid = integrity(sig)
    detail = result.failure_msg
    # Never PASSED for altered bytes or a forbidden change, whatever the AdES process said.
    if intact is False:
        indication, sub = Indication.FAILED, SubIndication.HASH_FAILURE
    elif valid is False:
        indication, sub = Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE
    elif changes is not None and changes.forbidden is not None:
        indication, sub = Indication.FAILED, SubIndication.MODIFIED_AFTER_SIGNING
        detail = f"changed after signing: {changes.forbidden}"
    elif timestamp_problem is not None:
        indication, sub = Indication.FAILED, SubIndication.HASH_FAILURE
        detail = timestamp_problem
    elif changes is None and details["coverage"] != "entire-file":
        if indication is Indication.PASSED:
            indication, sub = Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE
        warnings.append("updated after signing, and the changes were not analysed")
    if changes is not None and changes.forbidden is None:
        warnings.extend(
            f"changed after signing, as the signature allows: {text}" for text in changes.notable
        )
    if details["weak_algorithms"] and policy.allow_weak:
        warnings.append(
            "weak algorithm accepted (--insecure-allow-weak): "
            + ", ".join(details["weak_algorithms"])
        )
    ts_time = None
    if status is not None and getattr(status, "timestamp_validity", None) is not None:
        ts_time = status.timestamp_validity.timestamp.isoformat()
    best = getattr(result, "best_signature_time", None)
    if best is None:  # the basic process has no time of its own: the validation time
        best = validation_moment(policy)
    not_before = sig.signer_cert["tbs_certificate"]["validity"]["not_before"].native
    if sub is SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE and not_before > best:
        # pyHanko reports a not-yet-valid signer as a general chain failure
        sub = SubIndication.NOT_YET_VALID
    if policy.etsi:
        from signkit.verify.etsi import signature_part

        etsi_parts.append(signature_part(sig, result, indication, sub))
    return make_verdict(
        index,
        indication,
        sub,
        intact=intact,
        signature_valid=valid,
        trusted=trusted,
        timestamp_time=ts_time or details.pop("timestamp_time"),
        best_signature_time=best.isoformat() if best is not None else None,
        modification_level=changes.level_name if changes is not None else None,
        changes=list(changes.changes) if changes is not None else [],
        revocation=revocation,
        revocation_source=source,
        chain=chain,
        warnings=warnings,
        detail=detail,
        **{k: v for k, v in details.items() if k != "timestamp_time"},
    )


def _changes(sig: Any, policy: VerifyPolicy, details: dict[str, Any]) -> ChangeReport | None:
    """What changed after the signature; None when nobody looked."""
    from signkit.verify.pdf_changes import NONE, OTHER

    coverage, revision = signed_state(sig)
    details["coverage"] = coverage
    if coverage == "entire-file":
        return ChangeReport(NONE)
    if revision is None:
        return ChangeReport(
            OTHER,
            forbidden="the signature does not cover the whole revision it belongs to",
        )
    if not policy.diff_analysis:
        return None
    docmdp = sig.docmdp_level
    fieldmdp = sig.fieldmdp
    return review_changes(
        sig.reader,
        revision,
        docmdp=docmdp.value if docmdp is not None else None,
        locked=fieldmdp.is_locked if fieldmdp is not None else None,
    )


def signed_state(sig: Any) -> tuple[str, int | None]:
    """(coverage, the revision the signed bytes end with).

    The revision is found by where the signed bytes end (their last
    startxref), not only by where the signature dictionary was written: a
    linearized file signed as a whole ends its signed bytes one section
    later than the one holding the dictionary.
    """
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import process_data_at_eof
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    level = sig.evaluate_signature_coverage()
    if level == SignatureCoverageLevel.ENTIRE_FILE:
        return "entire-file", None
    if level == SignatureCoverageLevel.ENTIRE_REVISION:
        return "entire-revision", sig.signed_revision
    if level != SignatureCoverageLevel.CONTIGUOUS_BLOCK_FROM_START:
        return "partial", None
    _, len1, _, len2 = (int(v) for v in sig.byte_range)
    signed_len = len1 + len2 + len(sig.pkcs7_content) * 2 + 2
    xrefs = sig.reader.xrefs
    stream = sig.reader.stream
    stream.seek(signed_len)
    try:
        startxref = process_data_at_eof(stream)
    except PdfReadError:
        return "partial", None
    # Searched from the first revision: a signature dictionary rewritten after
    # signing was written later than the bytes its signature covers.
    for revision in range(xrefs.total_revisions):
        if xrefs.get_startxref_for_revision(revision) != startxref:
            continue
        if all(
            xrefs.get_xref_container_info(r).end_location <= signed_len for r in range(revision + 1)
        ):
            return "entire-revision", revision
    return "partial", None


def key_facts(cert: Any) -> tuple[str, int]:
    """(algorithm, size in bits) of a certificate's public key; EdDSA keys have
    their curve's size."""
    public_key = cert.public_key
    algorithm = str(public_key.algorithm)
    fixed = {"ed25519": 256, "ed448": 456}
    if algorithm in fixed:
        return algorithm, fixed[algorithm]
    try:
        return algorithm, int(public_key.bit_size)
    except Exception as exc:
        if not library_fault(exc):
            raise
        return algorithm, 0


def _describe(sig: Any, doc: _DocContext) -> dict[str, Any]:
    """What the signature says about itself (no validation yet)."""
    from signkit.verify.pdf_timestamps import signature_timestamp_problem, timestamp_level

    cert = sig.signer_cert
    signer_info = sig.signer_info
    claimed = None
    for attr in signer_info["signed_attrs"]:
        if attr["type"].native == "signing_time":
            claimed = attr["values"][0].native.isoformat()
    if claimed is None and sig.self_reported_timestamp is not None:
        claimed = sig.self_reported_timestamp.isoformat()
    ts_time, level = timestamp_level(sig, doc)
    docmdp = sig.docmdp_level
    digest = signer_info["digest_algorithm"]["algorithm"].native
    try:
        sig_algo = signer_info["signature_algorithm"].signature_algo
    except ValueError:
        sig_algo = signer_info["signature_algorithm"]["algorithm"].native
    key_algorithm, key_bits = key_facts(cert)
    return {
        "name": str(sig.field_name),
        **certificate_facts(cert),
        "claimed_signing_time": claimed,
        "timestamp_time": ts_time,
        "timestamp_problem": signature_timestamp_problem(sig),
        "coverage": None,
        "certification_level": docmdp.value if docmdp is not None else None,
        "level": level,
        "weak_algorithms": weak_algorithms(digest, str(sig_algo), key_algorithm, key_bits),
    }


def extract_revision(path: Path, number: int, password: str | None = None) -> bytes:
    """The bytes of the revision signature ``number`` (1-based) covers: what was
    signed (encrypted as the document is: the same password opens it)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from signkit.formats.pdf.encryption import OPEN_HINT, unlock_to_read

    data = path.read_bytes()
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            unlock_to_read(reader, str(path), password, hint=OPEN_HINT)
        sigs = [
            s for _, s in _signatures(reader) if not isinstance(s, str) and not _is_timestamp(s)
        ]
    except Exception as exc:
        if not library_fault(exc):
            raise
        raise InputFormatError(f"malformed PDF ({_reason(exc)})", subject=str(path)) from None
    if not 1 <= number <= len(sigs):
        raise InputError(f"no signature {number} (the document has {len(sigs)})", subject=str(path))
    _, _, start2, len2 = (int(v) for v in sigs[number - 1].byte_range)
    return data[: start2 + len2]


def _is_timestamp(sig: Any) -> bool:
    from signkit.verify.pdf_timestamps import is_document_timestamp

    return is_document_timestamp(sig)
