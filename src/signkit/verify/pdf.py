"""PDF signature verification on pyHanko's EN 319 102-1 processes.

Per signature the process matches what the signature offers: basic
validation (B-B), validation with time (a signature time-stamp: B-T, B-LT),
or long-term validation (document time-stamps after it: B-LTA). pyHanko's
AdES status and sub-indication are kept; on top, difference analysis turns
a forbidden change after signing into FAILED, which AdES leaves to policy.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from signkit.errors import InputError, InputFormatError
from signkit.verify.policy import (
    RevocationRule,
    VerifyPolicy,
    timing,
    validation_spec,
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

# Sub-indications that may only mean "revocation status unknown": with
# --revocation soft they are re-checked without requiring it.
_REVOCATION_UNKNOWN = frozenset(
    {
        SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
        SubIndication.TRY_LATER,
        SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE,
    }
)

_MODIFICATION = {
    0: "none",
    1: "lta-updates",
    2: "form-filling",
    3: "annotations",
    4: "other",
}


@dataclass
class _Cache:
    key: str
    specs: dict[str, Any]


_CACHE: _Cache | None = None


def _spec(policy: VerifyPolicy, rule: RevocationRule) -> Any:
    """Specs are built once per process and policy (trust manager, algorithm policy)."""
    global _CACHE
    if _CACHE is None or _CACHE.key != policy.key:
        _CACHE = _Cache(policy.key, {})
    if rule not in _CACHE.specs:
        _CACHE.specs[rule] = validation_spec(policy, rule)
    return _CACHE.specs[rule]


_HEX = b"0123456789abcdefABCDEF"
_PDF_WHITESPACE = b" \n\r\t\f\x00"


def read_hex_string(stream: Any, *, original: Any) -> Any:
    """pyHanko's hex-string reader, in bulk instead of one byte per call.

    A signature's /Contents is tens of kilobytes of hex; pyHanko reads it a
    token at a time (about a third of a B-LT verification). Same result and
    errors; a string with a comment in it (legal, never seen) goes to pyHanko's.
    """
    import binascii

    from pyhanko.pdf_utils.generic import pdf_string
    from pyhanko.pdf_utils.misc import PdfStreamError

    start = stream.tell()
    stream.read(1)  # '<'
    chunks = []
    while True:
        block = stream.read(1 << 16)
        if not block:
            raise PdfStreamError("Stream ended prematurely")
        end = block.find(b">")
        if end >= 0:
            chunks.append(block[:end])
            stream.seek(end + 1 - len(block), 1)
            break
        chunks.append(block)
    digits = b"".join(chunks).translate(None, _PDF_WHITESPACE)
    if b"%" in digits:
        stream.seek(start)
        return original(stream)
    bad = digits.translate(None, _HEX)
    if bad:
        raise PdfStreamError("Unexpected token in hex string: " + repr(bad[:1]))
    if len(digits) % 2:
        digits += b"0"
    return pdf_string(binascii.unhexlify(digits))


_PREPPED: dict[bytes, str] = {}


def install_name_cache() -> None:
    """Remember RFC 5280 name preparation (stringprep) per encoded attribute.

    Certificate names are compared dozens of times per signature (path
    building, OCSP, CMS signer lookup) and asn1crypto redoes the stringprep
    for every parsed copy; the result depends on the DER alone, and the same
    issuers recur across a batch.
    """
    from asn1crypto import x509

    if getattr(x509.NameTypeAndValue, "signkit_cached", False):
        return

    def prepped_value(self: Any) -> str:
        if self._prepped is None:
            der = self.dump()
            value = _PREPPED.get(der)
            if value is None:
                value = self._ldap_string_prep(self["value"].native)
                if len(_PREPPED) < 100_000:
                    _PREPPED[der] = value
            self._prepped = value
        return str(self._prepped)

    x509.NameTypeAndValue.prepped_value = property(prepped_value)
    x509.NameTypeAndValue.signkit_cached = True


_PATHS: set[tuple[Any, ...]] = set()
_PATH_CACHE_ON = False


def install_path_cache() -> None:
    """Remember certification paths already validated in this run (offline only).

    A path's validation depends on its certificates, the trust and algorithm
    policy, the validation instant (one per run), and the revocation data at
    hand; offline, that data is what the documents embed, so documents signed
    by the same certificate with the same DSS contents give the same answer.
    Only successes are remembered; validations that fetch from the network,
    and the long-term (B-LTA) process, whose proofs of existence are gathered
    along the way, always run in full.
    """
    import pyhanko_certvalidator

    current = pyhanko_certvalidator.async_validate_path  # type: ignore[attr-defined]
    if getattr(current, "signkit_cached", False):
        return

    async def cached(validation_context: Any, path: Any, parameters: Any = None) -> Any:
        params = validation_context.timing_params
        policy_key = _CACHE.key if _CACHE is not None else None
        if policy_key is None or not _PATH_CACHE_ON or validation_context.fetching_allowed:
            return await current(validation_context, path, parameters)
        key = (
            policy_key,
            params.point_in_time_validation,
            tuple(c.dump() for c in path.iter_certs(include_root=True)),
            params.validation_time,
            params.best_signature_time,
            params.time_tolerance,
            repr(validation_context.revinfo_policy),
            repr(parameters),
            frozenset(hashlib.sha256(o.dump()).digest() for o in validation_context.ocsps),
            frozenset(hashlib.sha256(c.dump()).digest() for c in validation_context.crls),
        )
        if key in _PATHS:
            validation_context.record_validation(path.leaf, path)
            return path.leaf
        result = await current(validation_context, path, parameters)
        if len(_PATHS) < 10_000:
            _PATHS.add(key)
        return result

    cached.signkit_cached = True  # type: ignore[attr-defined]
    pyhanko_certvalidator.async_validate_path = cached  # type: ignore[attr-defined]


def install_fast_hex_reader() -> None:
    """Route pyHanko's PDF parser to read_hex_string (verification processes only)."""
    from pyhanko.pdf_utils import generic

    current = generic.read_hex_string_from_stream
    if getattr(current, "signkit_fast", False):
        return

    def fast(stream: Any) -> Any:
        return read_hex_string(stream, original=current)

    fast.signkit_fast = True  # type: ignore[attr-defined]
    fast.__wrapped_original__ = current  # type: ignore[attr-defined]
    generic.read_hex_string_from_stream = fast


def preload() -> None:
    """Import the PDF validation stack (before worker processes fork, so they share it)."""
    import pyhanko.sign.diff_analysis
    import pyhanko.sign.validation.ades
    import pyhanko.sign.validation.pdf_embedded  # noqa: F401
    from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: F401

    install_fast_hex_reader()
    install_name_cache()
    install_path_cache()


def verify_pdf(path: Path, policy: VerifyPolicy) -> DocumentVerdict:
    """Verify every signature of one PDF; unreadable files raise InputError."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    install_fast_hex_reader()
    install_name_cache()
    install_path_cache()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    if not data.lstrip()[:5] == b"%PDF-":
        raise InputFormatError("not a PDF (no %PDF- header)", subject=str(path))
    import io

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        if reader.encrypted:
            raise InputFormatError("the PDF is encrypted", subject=str(path))
        sigs = list(reader.embedded_regular_signatures)
        context = _DocContext.read(reader)
    except PdfError as exc:
        raise InputFormatError(f"malformed PDF ({exc})", subject=str(path)) from None
    parts: list[Any] = []
    verdicts = [_verify_one(i, sig, policy, context, parts) for i, sig in enumerate(sigs)]
    verdict = DocumentVerdict.of(str(path), "pdf", verdicts, hashlib.sha256(data).hexdigest())
    verdict.etsi = parts
    return verdict


@dataclass(frozen=True)
class _DocContext:
    """What the whole document offers every signature: DSS data, document time-stamps."""

    knowledge: Any
    has_revinfo: bool
    doc_ts_revisions: tuple[int, ...]

    @classmethod
    def read(cls, reader: Any) -> _DocContext:
        from pyhanko.sign.validation.ades import _dss_to_local_knowledge

        knowledge = _dss_to_local_knowledge(reader=reader)
        revisions = tuple(ts.signed_revision for ts in reader.embedded_timestamp_signatures)
        return cls(
            knowledge=knowledge,
            has_revinfo=bool(knowledge.known_ocsps or knowledge.known_crls),
            doc_ts_revisions=revisions,
        )


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


def _rfc4514(name: Any) -> str:
    """CN=…,O=…,C=VN with Unicode kept, the form the cert check and openssl print."""
    parts = []
    for rdn in reversed(name.chosen):
        for attr in rdn:
            key = attr["type"].native
            value = str(attr["value"].native).replace(",", "\\,")
            parts.append(f"{_SHORT.get(key, attr['type'].dotted)}={value}")
    return ",".join(parts)


def _claimed_signer(sig: Any) -> dict[str, Any]:
    """The certificate the signer identifier names, when pyHanko refused to pick it."""
    try:
        sid = sig.signer_info["sid"].chosen
        for choice in sig.signed_data["certificates"]:
            cert = choice.chosen
            if cert.serial_number == sid["serial_number"].native and cert.issuer == sid["issuer"]:
                return {
                    "signer_subject": _rfc4514(cert.subject),
                    "signer_issuer": _rfc4514(cert.issuer),
                    "signer_serial": _hex_serial(cert),
                    "signer_sha256": hashlib.sha256(cert.dump()).hexdigest(),
                }
    except (KeyError, ValueError, TypeError):
        pass
    return {}


def _hex_serial(cert: Any) -> str:
    return format(cert.serial_number, "X")


def _verify_one(
    index: int, sig: Any, policy: VerifyPolicy, doc: _DocContext, etsi_parts: list[Any]
) -> SignatureVerdict:
    from pyhanko.sign.validation.errors import SignatureValidationError

    name = None
    try:
        name = str(sig.field_name)
        details = _describe(sig, doc)
    except SignatureValidationError as exc:
        # e.g. a signer certificate that is not the one the signed attributes name
        ades = getattr(exc, "ades_subindication", None)
        return make_verdict(
            index,
            Indication(ades.status.name) if ades is not None else Indication.FAILED,
            _sub(ades) if ades is not None else SubIndication.FORMAT_FAILURE,
            name=name,
            signature_valid=False,
            detail=str(exc)[:300],
            **_claimed_signer(sig),
        )
    except Exception as exc:  # a malformed signature must not hide the others
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.FORMAT_FAILURE,
            name=name,
            detail=f"{type(exc).__name__}: {str(exc)[:200]}",
        )
    try:
        sig.compute_integrity_info(diff_policy=None, skip_diff=not policy.diff_analysis)
    except (SignatureValidationError, ValueError, KeyError) as exc:
        return make_verdict(
            index, Indication.FAILED, SubIndication.FORMAT_FAILURE, detail=str(exc), **details
        )
    rule: RevocationRule = "off" if policy.revocation == "off" else "required"
    result = _run_process(sig, policy, rule, doc, details["level"])
    sub = _sub(result.ades_subindic)
    indication = Indication(result.ades_subindic.status.name)
    warnings: list[str] = []
    revocation = "not-checked" if rule == "off" else "good"
    ts_moment = details.get("timestamp_time")
    if (
        indication is Indication.INDETERMINATE
        and sub in _REVOCATION_UNKNOWN
        and details["level"] in ("B-LT", "B-LTA")
        and policy.at is None
        and ts_moment is not None
    ):
        # The embedded OCSP/CRL answers were fresh when the signature was
        # time-stamped, not today: judge the signature as of that time-stamp
        # with them (what B-LT exists for). pyHanko's own past validation
        # wants a proof of existence for that data, i.e. a later document
        # time-stamp, which B-LT does not have.
        moment = datetime.fromisoformat(ts_moment)
        past = _run_process(sig, policy, rule, doc, "B-LT", moment=moment)
        if Indication(past.ades_subindic.status.name) is Indication.PASSED:
            result, sub, indication = past, SubIndication.OK, Indication.PASSED
            warnings.append(
                f"validated as of the signature time-stamp ({ts_moment}) with the embedded "
                "revocation data, which is no longer current"
            )
    if (
        indication is Indication.INDETERMINATE
        and sub in _REVOCATION_UNKNOWN
        and policy.revocation == "soft"
    ):
        retry = _run_process(sig, policy, "soft", doc, details["level"])
        if Indication(retry.ades_subindic.status.name) is Indication.PASSED:
            result, sub, indication = retry, SubIndication.OK, Indication.PASSED
            revocation = "unknown"
            warnings.append(
                "revocation status unknown (no OCSP or CRL answer); accepted under "
                "--revocation soft"
            )
    status = result.api_status
    if status is not None and status.revocation_details is not None:
        revocation = "revoked"
    elif indication is not Indication.PASSED and sub in _REVOCATION_UNKNOWN:
        revocation = "unknown"
    if rule == "off":
        warnings.append("revocation not checked (--revocation off)")
    intact = bool(status.intact) if status is not None else None
    valid = bool(status.valid) if status is not None else None
    trusted = status is not None and status.validation_path is not None
    integrity = sig.summarise_integrity_info()
    modification = None
    if integrity["diff_result"] is not None:
        level = getattr(integrity["diff_result"], "modification_level", None)
        modification = _MODIFICATION.get(level.value if level is not None else 4, "other")
    # Never PASSED for altered bytes or a forbidden change, whatever the AdES process said.
    if intact is False and indication is not Indication.FAILED:
        indication, sub = Indication.FAILED, SubIndication.HASH_FAILURE
    elif valid is False and indication is not Indication.FAILED:
        indication, sub = Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE
    if integrity["docmdp_ok"] is False and indication is not Indication.FAILED:
        indication, sub = Indication.FAILED, SubIndication.MODIFIED_AFTER_SIGNING
    if (
        not policy.diff_analysis
        and details["coverage"] != "entire-file"
        and indication is Indication.PASSED
    ):
        indication, sub = Indication.INDETERMINATE, SubIndication.SIG_CONSTRAINTS_FAILURE
        warnings.append("updated after signing, and the changes were not analysed")
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
    verdict = make_verdict(
        index,
        indication,
        sub,
        intact=intact,
        signature_valid=valid,
        trusted=trusted,
        timestamp_time=ts_time or details.pop("timestamp_time"),
        best_signature_time=best.isoformat() if best is not None else None,
        modification_level=modification,
        revocation=revocation,
        warnings=warnings,
        detail=result.failure_msg,
        **{k: v for k, v in details.items() if k != "timestamp_time"},
    )
    return verdict


def _run_process(
    sig: Any,
    policy: VerifyPolicy,
    rule: RevocationRule,
    doc: _DocContext,
    level: str,
    *,
    moment: datetime | None = None,
) -> Any:
    from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
    from pyhanko.sign.validation.ades import (
        ades_basic_validation,
        ades_lta_validation,
        ades_with_time_validation,
    )
    from pyhanko.sign.validation.policy_decl import LocalKnowledge, PdfSignatureValidationSpec
    from pyhanko.sign.validation.status import PdfSignatureStatus

    spec = _spec(policy, rule)
    known = doc.knowledge
    spec = replace(
        spec,
        local_knowledge=LocalKnowledge(
            known_ocsps=list(known.known_ocsps),
            known_crls=list(known.known_crls),
            known_certs=list(known.known_certs),
        ),
    )
    when = timing(replace(policy, at=moment) if moment is not None else policy)
    if level == "B-LTA":
        return asyncio.run(
            ades_lta_validation(
                sig, PdfSignatureValidationSpec(spec, diff_policy=DEFAULT_DIFF_POLICY), when
            )
        )
    kwargs = {
        "timing_info": when,
        "raw_digest": sig.compute_digest(),
        "extra_status_kwargs": sig.summarise_integrity_info(),
        "status_cls": PdfSignatureStatus,
    }
    global _PATH_CACHE_ON
    _PATH_CACHE_ON = True
    try:
        if level == "B-B":
            # pyHanko's basic process builds a plain CMS status whatever status_cls
            # says: the PDF integrity facts are read from the signature instead.
            del kwargs["extra_status_kwargs"], kwargs["status_cls"]
            return asyncio.run(ades_basic_validation(sig.signed_data, spec, **kwargs))
        return asyncio.run(ades_with_time_validation(sig.signed_data, spec, **kwargs))
    finally:
        _PATH_CACHE_ON = False


def _sub(value: Any) -> SubIndication:
    try:
        return SubIndication(value.standard_name)
    except ValueError:
        return SubIndication.GENERIC


def _describe(sig: Any, doc: _DocContext) -> dict[str, Any]:
    """What the signature says about itself (no validation yet)."""
    from pyhanko.sign.validation import generic_cms

    cert = sig.signer_cert
    signer_info = sig.signer_info
    claimed = None
    for attr in signer_info["signed_attrs"]:
        if attr["type"].native == "signing_time":
            claimed = attr["values"][0].native.isoformat()
    if claimed is None and sig.self_reported_timestamp is not None:
        claimed = sig.self_reported_timestamp.isoformat()
    tst = next(iter(generic_cms.extract_tst_data_iter(signer_info, signed=False)), None)
    ts_time = None
    if tst is not None:
        info = tst["encap_content_info"]["content"].parsed
        ts_time = info["gen_time"].native.isoformat()
    level = "B-B"
    if tst is not None:
        level = "B-T"
        if doc.has_revinfo:
            level = "B-LT"
            if any(rev > sig.signed_revision for rev in doc.doc_ts_revisions):
                level = "B-LTA"
    coverage = sig.evaluate_signature_coverage()
    docmdp = sig.docmdp_level
    digest = signer_info["digest_algorithm"]["algorithm"].native
    try:
        sig_algo = signer_info["signature_algorithm"].signature_algo
    except ValueError:
        sig_algo = signer_info["signature_algorithm"]["algorithm"].native
    public_key = cert.public_key
    return {
        "name": str(sig.field_name),
        "signer_subject": _rfc4514(cert.subject),
        "signer_issuer": _rfc4514(cert.issuer),
        "signer_serial": _hex_serial(cert),
        "signer_sha256": hashlib.sha256(cert.dump()).hexdigest(),
        "claimed_signing_time": claimed,
        "timestamp_time": ts_time,
        "coverage": {3: "entire-file", 2: "entire-revision"}.get(coverage.value, "partial"),
        "certification_level": docmdp.value if docmdp is not None else None,
        "level": level,
        "weak_algorithms": weak_algorithms(
            digest, str(sig_algo), public_key.algorithm, int(public_key.bit_size)
        ),
    }


def extract_revision(path: Path, number: int) -> bytes:
    """The bytes of the revision signature ``number`` (1-based) covers: what was signed."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    data = path.read_bytes()
    import io

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    sigs = list(reader.embedded_regular_signatures)
    if not 1 <= number <= len(sigs):
        raise InputError(f"no signature {number} (the document has {len(sigs)})", subject=str(path))
    _, _, start2, len2 = (int(v) for v in sigs[number - 1].byte_range)
    return data[: start2 + len2]
