"""CAdES (.p7s, .p7m) verification on pyHanko's EN 319 102-1 processes.

Each signer goes through the process its level calls for: basic validation
(B-B) or validation with time (a signature time-stamp). The validation data
a B-LT signature carries (SignedData.certificates and .crls) is the local
knowledge the chain is judged with, so ``--offline`` can decide revocation;
when those answers are no longer current, the signature is judged as of its
time-stamp. Archive-time-stamp-v3 attributes are checked against the
signature as it is now (ats-hash-index-v3, message imprint, TSA chain); a
valid one makes the level B-LTA.

The content is hashed in a stream: attached, or the data file next to a
detached signature (``a.docx.p7s`` -> ``a.docx``; never a URL, never another
directory).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from signkit.errors import InputError
from signkit.formats.cms import cades
from signkit.formats.cms.der import SignedDataParts
from signkit.formats.cms.inspect import (
    CmsFile,
    SignerView,
    cms_in_memory,
    detached_data,
    open_cms,
    signers,
)
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

EXTENSIONS = (".p7s", ".p7m")

_REVOCATION_UNKNOWN = frozenset(
    {
        SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
        SubIndication.TRY_LATER,
        SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE,
    }
)


def verify_cms(path: Path, policy: VerifyPolicy) -> DocumentVerdict:
    """Verify every signer of one CMS signature file."""
    with open_cms(path) as found:
        data = None
        missing = None
        if found.parts.content is None:
            data = detached_data(path)
            if data is None or not data.is_file():
                missing = (
                    f"the signed data {data.name} is not next to the signature"
                    if data is not None
                    else "a detached signature names no data file (expected NAME.p7s next to NAME)"
                )
        coverage = f"file:{data.name}" if data is not None else "attached-content"
        verdicts = _judge(found, data, missing, coverage, policy)
    return DocumentVerdict.of(str(path), "cms", verdicts, _sha256(path))


def verify_cms_data(
    content: bytes,
    source: str,
    policy: VerifyPolicy,
    detached: tuple[str, bytes] | None,
) -> DocumentVerdict:
    """``verify_cms`` on a signature held in memory (an attachment of a package);
    ``detached`` is the (name, bytes) of the data a detached signature signs,
    when the caller found it, and nothing is written anywhere."""
    found = cms_in_memory(content, source)
    missing = None
    if found.parts.content is None and detached is None:
        missing = "a detached signature whose signed data is not in the package"
    coverage = f"file:{detached[0]}" if detached is not None else "attached-content"
    data = detached[1] if detached is not None else None
    verdicts = _judge(found, data, missing, coverage, policy)
    return DocumentVerdict.of(source, "cms", verdicts, hashlib.sha256(content).hexdigest())


def _judge(
    found: CmsFile,
    data: Path | bytes | None,
    missing: str | None,
    coverage: str,
    policy: VerifyPolicy,
) -> list[SignatureVerdict]:
    """The verdict of every signer; ``missing`` says why the signed data is not
    at hand (each signer is then INDETERMINATE)."""
    views = signers(found.parts, found.path)
    if missing is not None:
        return [
            make_verdict(
                i,
                Indication.INDETERMINATE,
                SubIndication.SIGNED_DATA_NOT_FOUND,
                detail=missing,
                **_details(v),
            )
            for i, v in enumerate(views)
        ]
    known = set(hashlib.algorithms_guaranteed)
    algorithms = {"sha256"} | ({v.digest_algorithm for v in views} & known)
    algorithms |= _archive_algorithms(views) & known
    digests = found.content_digests(algorithms, data)
    return [_judge_one(i, view, found, digests, policy, coverage) for i, view in enumerate(views)]


def _judge_one(
    index: int,
    view: SignerView,
    found: CmsFile,
    digests: dict[str, bytes],
    policy: VerifyPolicy,
    coverage: str,
) -> SignatureVerdict:
    """``_verify_one``; DER that the validation cannot read (a certificate list,
    revocation data) fails this signer as malformed."""
    if view.digest_algorithm not in digests:
        algorithm = view.digest_algorithm
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            name=f"signer {index + 1}",
            detail=f"unsupported digest algorithm {algorithm}",
            **_details(view),
        )
    try:
        return _verify_one(index, view, found, digests, policy, coverage)
    except (ValueError, KeyError, UnboundLocalError) as exc:
        reason = str(exc).splitlines()[0][:120]
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.FORMAT_FAILURE,
            name=f"signer {index + 1}",
            detail=f"malformed CMS structure ({reason})",
            **_details(view),
        )


def _archive_algorithms(views: list[SignerView]) -> set[str]:
    """Hash algorithms the archive time-stamps' imprints use."""
    found = set()
    for view in views:
        for stamp in cades.archive_stamps(view.raw):
            try:
                found.add(cades.imprint_algorithm(stamp.token))
            except (ValueError, KeyError):
                continue  # reported when the stamp is checked
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    return h.hexdigest()


def _details(view: SignerView) -> dict[str, Any]:
    """What the signer info says about itself (no validation yet)."""
    from asn1crypto import x509

    from signkit.verify.pdf import rfc4514 as _rfc4514

    out: dict[str, Any] = {}
    info = view.info
    for attr in info["signed_attrs"] or []:
        if attr["type"].native == "signing_time":
            out["claimed_signing_time"] = attr["values"][0].native.isoformat()
    if view.certificate is not None:
        cert = x509.Certificate.load(view.certificate)
        out.update(
            signer_subject=_rfc4514(cert.subject),
            signer_issuer=_rfc4514(cert.issuer),
            signer_serial=format(cert.serial_number, "X"),
            signer_sha256=hashlib.sha256(view.certificate).hexdigest(),
        )
        try:
            sig_algo = info["signature_algorithm"].signature_algo
        except ValueError:
            sig_algo = info["signature_algorithm"]["algorithm"].native
        key = cert.public_key
        out["weak_algorithms"] = weak_algorithms(
            view.digest_algorithm, str(sig_algo), key.algorithm, int(key.bit_size)
        )
    return out


@dataclass(frozen=True)
class _Evidence:
    certs: list[Any]
    crls: list[Any]
    ocsps: list[Any]

    @classmethod
    def of(cls, parts: SignedDataParts) -> _Evidence:
        from asn1crypto import crl, ocsp, x509

        certs, crls, ocsps = cades.validation_data(parts)
        return cls(
            [x509.Certificate.load(c) for c in certs],
            [crl.CertificateList.load(c) for c in crls],
            [ocsp.OCSPResponse.load(o) for o in ocsps],
        )

    def knowledge(self) -> Any:
        """pyHanko's local knowledge: what a B-LT signature carries."""
        from pyhanko.sign.validation.policy_decl import LocalKnowledge
        from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

        return LocalKnowledge(
            known_ocsps=[c for o in self.ocsps for c in OCSPContainer.load_multi(o)],
            known_crls=[CRLContainer(c) for c in self.crls],
            known_certs=list(self.certs),
        )


def _verify_one(
    index: int,
    view: SignerView,
    found: CmsFile,
    digests: dict[str, bytes],
    policy: VerifyPolicy,
    coverage: str,
) -> SignatureVerdict:
    from asn1crypto import cms

    details = _details(view)
    if view.certificate is None:
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            detail="the signer's certificate is not in the signature",
            **details,
        )
    parts = found.parts
    one = replace(parts, signer_infos=[view.raw.encode()], content=None)
    signed_data = cms.SignedData.load(one.detached_der())
    evidence = _Evidence.of(parts)
    has_tst = bool(cades.signature_timestamps(view.raw))
    level = "B-T" if has_tst else "B-B"
    if has_tst and (evidence.crls or evidence.ocsps):
        level = "B-LT"
    raw_digest = digests[view.digest_algorithm]
    intact = raw_digest == view.message_digest
    rule: RevocationRule = "off" if policy.revocation == "off" else "required"
    result = _run(signed_data, policy, rule, evidence, has_tst, raw_digest)
    indication = Indication(result.ades_subindic.status.name)
    sub = _sub(result.ades_subindic)
    warnings: list[str] = []
    stamps, ats_times, ats_warnings = _archive_timestamps(view, parts, digests, policy, evidence)
    warnings += ats_warnings
    if stamps and level == "B-LT":
        level = "B-LTA"
    ts_time = _timestamp_time(result) or _token_time(cades.signature_timestamps(view.raw))
    revocation = "not-checked" if rule == "off" else "good"
    if (
        indication is Indication.INDETERMINATE
        and sub in _REVOCATION_UNKNOWN
        and level in ("B-LT", "B-LTA")
        and ts_time is not None
        and validation_moment(policy) > datetime.fromisoformat(ts_time)
    ):
        # The embedded OCSP/CRL answers were current when the signature was
        # time-stamped (or, added later by extend, when the first archive
        # time-stamp covered them), not today: judge it as of then with them.
        for kind, when in (
            ("signature", ts_time),
            ("archive", ats_times[0] if ats_times else None),
        ):
            if when is None:
                continue
            past = _run(
                signed_data,
                policy,
                rule,
                evidence,
                has_tst,
                raw_digest,
                at=datetime.fromisoformat(when),
            )
            if Indication(past.ades_subindic.status.name) is Indication.PASSED:
                result, indication, sub = past, Indication.PASSED, SubIndication.OK
                warnings.append(
                    f"validated as of the {kind} time-stamp ({when}) with the embedded "
                    "revocation data, which is no longer current"
                )
                break
    if indication is Indication.INDETERMINATE and sub in _REVOCATION_UNKNOWN:
        if policy.revocation == "soft":
            retry = _run(signed_data, policy, "soft", evidence, has_tst, raw_digest)
            if Indication(retry.ades_subindic.status.name) is Indication.PASSED:
                result, indication, sub = retry, Indication.PASSED, SubIndication.OK
                revocation = "unknown"
                warnings.append(
                    "revocation status unknown (no OCSP or CRL answer); accepted under "
                    "--revocation soft"
                )
        else:
            revocation = "unknown"
    status = result.api_status
    if status is not None and getattr(status, "revocation_details", None) is not None:
        revocation = "revoked"
    if rule == "off":
        warnings.append("revocation not checked (--revocation off)")
    valid = bool(status.valid) if status is not None else None
    trusted = status is not None and getattr(status, "validation_path", None) is not None
    if not intact and indication is not Indication.FAILED:
        indication, sub = Indication.FAILED, SubIndication.HASH_FAILURE
    if details.get("weak_algorithms") and policy.allow_weak:
        warnings.append(
            "weak algorithm accepted (--insecure-allow-weak): "
            + ", ".join(details["weak_algorithms"])
        )
    best = getattr(result, "best_signature_time", None) or validation_moment(policy)
    source = None
    if revocation in ("good", "revoked"):
        source = "embedded" if (evidence.crls or evidence.ocsps) else "fetched"
    return make_verdict(
        index,
        indication,
        sub,
        name=f"signer {index + 1}",
        intact=intact,
        signature_valid=valid,
        trusted=trusted,
        timestamp_time=ts_time,
        best_signature_time=best.isoformat(),
        coverage=coverage,
        level=level,
        revocation=revocation,
        revocation_source=source,
        chain=_chain(status),
        warnings=warnings,
        archive_timestamp_times=ats_times,
        detail=result.failure_msg,
        **details,
    )


def _timestamp_time(result: Any) -> str | None:
    status = result.api_status
    validity = getattr(status, "timestamp_validity", None) if status is not None else None
    return validity.timestamp.isoformat() if validity is not None else None


def _chain(status: Any) -> list[str]:
    """Subjects of the validated path, signer first."""
    from signkit.verify.pdf import rfc4514 as _rfc4514

    path = getattr(status, "validation_path", None) if status is not None else None
    if path is None:
        return []
    return [_rfc4514(c.subject) for c in path.iter_certs(include_root=True)][::-1]


def _token_time(tokens: list[bytes]) -> str | None:
    """The time the first signature time-stamp token states (not yet validated)."""
    from asn1crypto import cms

    from signkit.pki.timestamps import tst_info

    for token in tokens:
        try:
            info = tst_info(cms.ContentInfo.load(token)["content"])
        except (ValueError, KeyError, TypeError):
            continue
        if info is not None:
            return str(info["gen_time"].native.isoformat())
    return None


def _run(
    signed_data: Any,
    policy: VerifyPolicy,
    rule: RevocationRule,
    evidence: _Evidence,
    with_time: bool,
    raw_digest: bytes,
    *,
    at: datetime | None = None,
) -> Any:
    from pyhanko.sign.validation.ades import ades_basic_validation, ades_with_time_validation

    spec = replace(validation_spec(policy, rule), local_knowledge=evidence.knowledge())
    when = timing(replace(policy, at=at) if at is not None else policy)
    process = ades_with_time_validation if with_time else ades_basic_validation
    return asyncio.run(process(signed_data, spec, timing_info=when, raw_digest=raw_digest))


def _sub(value: Any) -> SubIndication:
    try:
        return SubIndication(value.standard_name)
    except ValueError:
        return SubIndication.GENERIC


def _archive_timestamps(
    view: SignerView,
    parts: SignedDataParts,
    digests: dict[str, bytes],
    policy: VerifyPolicy,
    evidence: _Evidence,
) -> tuple[int, list[str], list[str]]:
    """(valid archive time-stamps, their times, warnings about the others)."""
    from asn1crypto import cms

    valid, times, warnings = 0, [], []
    for stamp in cades.archive_stamps(view.raw):
        problem = cades.check_index(parts, view.raw, stamp)
        if problem is None and stamp.index is not None:
            token = cms.ContentInfo.load(stamp.token)["content"]
            imprint_algo = cades.imprint_algorithm(stamp.token)
            content_digest = digests.get(imprint_algo)
            if content_digest is None:
                problem = f"archive time-stamp imprint in {imprint_algo} is not supported"
            else:
                data = cades.ats_input(parts, view.raw, content_digest, stamp.index)
                problem, when = _check_token(token, data, policy, evidence)
                if problem is None and when is not None:
                    valid += 1
                    times.append(when)
                    continue
        warnings.append(f"archive time-stamp ignored ({problem})")
    return valid, times, warnings


def _check_token(
    signed: Any, covered: bytes, policy: VerifyPolicy, evidence: _Evidence
) -> tuple[str | None, str | None]:
    """(problem, time) of a time-stamp token over ``covered``."""
    from asn1crypto import x509
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    context = ValidationContext(
        trust_roots=[x509.Certificate.load(d) for d in policy.anchors],
        other_certs=evidence.certs,
        crls=evidence.crls,
        ocsps=evidence.ocsps,
        allow_fetching=False,
        revocation_mode="soft-fail",
        moment=policy.at or policy.now,
    )

    def imprint(algo: str) -> bytes:
        return hashlib.new(algo, covered).digest()

    try:
        status = asyncio.run(validate_tst_signed_data(signed, context, imprint))
        if _untrusted(status) and status.get("intact") and status.get("valid"):
            # The embedded answers about the TSA were current when the token was
            # made, not today: judge its chain as of its own time with them.
            made = signed["encap_content_info"]["content"].parsed["gen_time"].native
            context = ValidationContext(
                trust_roots=[x509.Certificate.load(d) for d in policy.anchors],
                other_certs=evidence.certs,
                crls=evidence.crls,
                ocsps=evidence.ocsps,
                allow_fetching=False,
                revocation_mode="soft-fail",
                moment=min(made, policy.at or policy.now),
            )
            status = asyncio.run(validate_tst_signed_data(signed, context, imprint))
    except Exception as exc:  # a malformed token is reported, not trusted
        return f"{type(exc).__name__}: {str(exc)[:160]}", None
    if not status.get("intact"):
        return "its imprint does not match the signature as it is now", None
    if not status.get("valid"):
        return "its signature does not verify", None
    if _untrusted(status):
        return "its TSA does not chain to a trusted anchor", None
    return None, status["timestamp"].isoformat()


def _untrusted(status: dict[str, Any]) -> bool:
    return status.get("validation_path") is None or status.get("trust_problem_indic") is not None
