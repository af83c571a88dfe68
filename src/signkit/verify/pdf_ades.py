"""pyHanko's EN 319 102-1 processes for one PDF signature, and when to run them again.

The process matches what the signature offers (basic, with time, long-term).
When it cannot establish a status, it is re-run as the standard and the run's
policy allow: as of the signature time-stamp with the revocation data
embedded for that moment, then (with --revocation soft) without requiring an
answer, then without using answers that cannot be used. Every re-run is said
in the verdict's warnings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from signkit import patches
from signkit.faults import library_fault
from signkit.verify.policy import RevocationRule, VerifyPolicy, timing, validation_spec
from signkit.verify.policy import moment as validation_moment
from signkit.verify.verdict import Indication, SubIndication

# Sub-indications that may only mean "revocation status unknown": with
# --revocation soft they are re-checked without requiring it.
_REVOCATION_UNKNOWN = frozenset(
    {
        SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
        SubIndication.TRY_LATER,
        SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE,
    }
)
# Where validating as of the signature time-stamp (with the revocation data
# embedded for that moment) may succeed when validating now did not.
_AS_OF_TIMESTAMP = _REVOCATION_UNKNOWN | {SubIndication.OUT_OF_BOUNDS_NO_POE}


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


def integrity(sig: Any) -> tuple[bool | None, bool | None]:
    """The digest and signature value, checked without any trust (when the
    AdES process stopped before it)."""
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity

    try:
        intact, valid = validate_sig_integrity(
            sig.signer_info, sig.signer_cert, "data", sig.compute_digest()
        )
    except Exception as exc:
        if not library_fault(exc):
            raise
        return None, None
    return bool(intact), bool(valid)


def validate(
    sig: Any,
    policy: VerifyPolicy,
    knowledge: Any,
    details: dict[str, Any],
    warnings: list[str],
) -> tuple[Any, Indication, SubIndication, str]:
    """The AdES process, re-run as EN 319 102-1 and the revocation policy allow."""
    rule: RevocationRule = "off" if policy.revocation == "off" else "required"
    level = details["level"]
    result = run_process(sig, policy, rule, knowledge, level)
    sub = sub_indication(result.ades_subindic)
    indication = Indication(result.ades_subindic.status.name)
    if level == "B-LTA":
        # The long-term process stands on the document time-stamps' chains;
        # when it cannot, the signature time-stamp alone may still suffice
        # (the document time-stamps get verdicts of their own).
        level = "B-LT"
        if indication is not Indication.PASSED:
            plain = run_process(sig, policy, rule, knowledge, level)
            if Indication(plain.ades_subindic.status.name) is Indication.PASSED:
                result, sub, indication = plain, SubIndication.OK, Indication.PASSED
    revocation = "not-checked" if rule == "off" else "good"
    ts_moment = details.get("timestamp_time")
    horizon = validation_moment(policy)
    if (
        indication is Indication.INDETERMINATE
        and sub in _AS_OF_TIMESTAMP
        and level == "B-LT"
        and ts_moment is not None
        and datetime.fromisoformat(ts_moment) <= horizon
    ):
        # The embedded OCSP/CRL answers were fresh when the signature was
        # time-stamped, not at the validation time: judge the signature as of
        # that time-stamp with them (what B-LT exists for). pyHanko's own past
        # validation wants a proof of existence for that data, i.e. a later
        # document time-stamp, which B-LT does not have.
        moment = datetime.fromisoformat(ts_moment)
        past = run_process(sig, policy, rule, knowledge, "B-LT", moment=moment)
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
        soft_rules: tuple[RevocationRule, ...] = ("soft", "off")
        for soft_rule in soft_rules:
            retry = run_process(sig, policy, soft_rule, knowledge, level)
            if Indication(retry.ades_subindic.status.name) is Indication.PASSED:
                result, sub, indication = retry, SubIndication.OK, Indication.PASSED
                revocation = "unknown"
                warnings.append(
                    "revocation status unknown (no OCSP or CRL answer); accepted under "
                    "--revocation soft"
                    if soft_rule == "soft"
                    else "revocation status could not be established (an answer that is "
                    "stale or cannot be validated); accepted under --revocation soft"
                )
                break
    status = result.api_status
    if status is not None and status.revocation_details is not None:
        revocation = "revoked"
    elif indication is not Indication.PASSED and sub in _REVOCATION_UNKNOWN:
        revocation = "unknown"
    if rule == "off":
        warnings.append("revocation not checked (--revocation off)")
    return result, indication, sub, revocation


def run_process(
    sig: Any,
    policy: VerifyPolicy,
    rule: RevocationRule,
    knowledge: Any,
    level: str,
    *,
    moment: datetime | None = None,
) -> Any:
    from pyhanko.sign.validation.ades import (
        ades_basic_validation,
        ades_lta_validation,
        ades_with_time_validation,
    )
    from pyhanko.sign.validation.policy_decl import LocalKnowledge, PdfSignatureValidationSpec
    from pyhanko.sign.validation.status import PdfSignatureStatus

    spec = _spec(policy, rule)
    known = knowledge
    spec = replace(
        spec,
        local_knowledge=LocalKnowledge(
            known_ocsps=list(known.known_ocsps),
            known_crls=list(known.known_crls),
            known_certs=list(known.known_certs),
        ),
    )
    when = timing(replace(policy, at=moment) if moment is not None else policy)
    if not _has_signature_timestamp(sig):
        # Time-stamped only by document time-stamps after it (a B-B signature
        # raised by `signkit extend`): pyHanko's processes with time want a
        # signature time-stamp, so the signature is judged by the basic
        # process (as of the time-stamp, when the embedded revocation data is
        # no longer current).
        level = "B-B"
    if level == "B-LTA" and moment is None:
        # The changes after signing are signkit's to judge (pdf_changes);
        # the long-term process needs only the time-stamps' proofs.
        return asyncio.run(
            ades_lta_validation(sig, PdfSignatureValidationSpec(spec, diff_policy=None), when)
        )
    kwargs = {
        "timing_info": when,
        "raw_digest": sig.compute_digest(),
        "extra_status_kwargs": sig.summarise_integrity_info(),
        "status_cls": PdfSignatureStatus,
    }
    with patches.remembered_paths(policy.key):
        if level == "B-B":
            # pyHanko's basic process builds a plain CMS status whatever status_cls
            # says: the PDF integrity facts are read from the signature instead.
            del kwargs["extra_status_kwargs"], kwargs["status_cls"]
            return asyncio.run(ades_basic_validation(sig.signed_data, spec, **kwargs))
        return asyncio.run(ades_with_time_validation(sig.signed_data, spec, **kwargs))


def _has_signature_timestamp(sig: Any) -> bool:
    from pyhanko.sign.validation import generic_cms

    return (
        next(iter(generic_cms.extract_tst_data_iter(sig.signer_info, signed=False)), None)
        is not None
    )


def sub_indication(value: Any) -> SubIndication:
    try:
        return SubIndication(value.standard_name)
    except ValueError:
        return SubIndication.GENERIC
