"""Time-stamps in a PDF, judged as time-stamps.

A document time-stamp (SubFilter ETSI.RFC3161, whatever its /Type says) is
a time-stamp token over a revision: its imprint must be the digest of the
bytes it covers, the TSA's signature must verify, and the TSA's chain is
validated like any other (embedded DSS data, the run's trust and revocation
policy). A signature time-stamp must be over its own signature: one copied
from another signature, or whose TSA signature does not verify, makes the
signature FAILED, whatever its chain.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from signkit.faults import describe, library_fault
from signkit.pki.chain import validate_chain
from signkit.pki.timestamps import TokenCheck, check_token, tst_info
from signkit.verify.verdict import Indication, SignatureVerdict, SubIndication, make_verdict

if TYPE_CHECKING:
    from signkit.verify.pdf import _DocContext
    from signkit.verify.policy import VerifyPolicy

_LATER_PROOF = frozenset(
    {
        SubIndication.OUT_OF_BOUNDS_NO_POE,
        SubIndication.TRY_LATER,
        SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE,
        SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
    }
)


def timestamp_level(sig: Any, doc: _DocContext) -> tuple[str | None, str]:
    """(time of the signature's time-stamp, level the time-stamps and validation
    data reach): EN 319 142-1 counts a document time-stamp after the signature
    as B-T, and one over a revision with a DSS as B-LTA."""
    from pyhanko.sign.validation import generic_cms

    signer_info = sig.signer_info
    tst = next(iter(generic_cms.extract_tst_data_iter(signer_info, signed=False)), None)
    later = doc.later_timestamps(sig.signed_revision)
    # The time a token states, if it is one (what it proves is judged elsewhere).
    info = tst_info(tst) if tst is not None else tst_info(later[0].signed_data) if later else None
    ts_time = info["gen_time"].native.isoformat() if info is not None else None
    if tst is None and not later:
        return ts_time, "B-B"
    if not (doc.has_revinfo or _archived_revinfo(signer_info)):
        return ts_time, "B-T"
    if (tst is not None and later) or _covers_dss(doc, later):
        return ts_time, "B-LTA"
    return ts_time, "B-LT"


def _covers_dss(doc: _DocContext, stamps: list[Any]) -> bool:
    """One of these document time-stamps covers a revision with a DSS."""
    for ts in stamps:
        try:
            if "/DSS" in doc.reader.get_historical_root(ts.signed_revision):
                return True
        except Exception as exc:  # an unreadable revision proves nothing
            if not library_fault(exc):
                raise
    return False


def _archived_revinfo(signer_info: Any) -> bool:
    """Adobe's revocationInfoArchival signed attribute (PKCS7-LT)."""
    return any(
        attr["type"].native == "adobe_revocation_info_archival"
        for attr in signer_info["signed_attrs"]
    )


def is_document_timestamp(sig: Any) -> bool:
    """A document time-stamp by its SubFilter or its /Type."""
    return bool(
        sig.sig_object.get("/SubFilter") == "/ETSI.RFC3161"
        or sig.sig_object.get("/Type") == "/DocTimeStamp"
    )


def _check(sig: Any, cache: dict[int, Any]) -> TokenCheck | str:
    """The trust-free checks of a document time-stamp (once per signature object
    of one document: ``cache`` lives with the document)."""
    key = id(sig)
    if key not in cache:
        try:
            cache[key] = check_token(sig.signed_data, lambda algo: sig.compute_digest(algo))
        except Exception as exc:
            if not library_fault(exc):
                raise
            cache[key] = f"the document time-stamp cannot be read ({describe(exc)})"
    result: TokenCheck | str = cache[key]
    return result


def imprint_holds(sig: Any, cache: dict[int, Any]) -> bool:
    """Whether a document time-stamp covers its revision and its TSA signed it."""
    check = _check(sig, cache)
    return isinstance(check, TokenCheck) and bool(check.imprint_ok and check.signature_ok)


def signature_timestamp_problem(sig: Any) -> str | None:
    """Why the signature's own time-stamp(s) prove nothing about it, if they do not."""
    from pyhanko.sign.validation import generic_cms

    expected = generic_cms.message_imprint_checker(sig.signer_info)
    for token in generic_cms.extract_tst_data_iter(sig.signer_info, signed=False):
        try:
            check = check_token(token, expected)
        except Exception as exc:
            if not library_fault(exc):
                raise
            return f"the signature time-stamp cannot be read ({describe(exc)})"
        if not check.imprint_ok:
            return (
                "the signature time-stamp is over another signature value (copied from elsewhere)"
            )
        if check.signature_ok is False:
            return "the signature time-stamp's own signature does not verify"
    return None


def verify_document_timestamp(
    index: int, sig: Any, policy: VerifyPolicy, doc: _DocContext
) -> SignatureVerdict:
    """A document time-stamp's verdict: imprint and TSA signature, chain, changes after it."""
    from signkit.verify.pdf import certificate_facts, signed_state
    from signkit.verify.pdf_changes import NONE, OTHER, ChangeReport, review_changes

    name = str(sig.field_name)
    base: dict[str, Any] = {"name": name, "kind": "document-timestamp"}
    check = _check(sig, doc.checks)
    if isinstance(check, str):
        return make_verdict(
            index, Indication.FAILED, SubIndication.FORMAT_FAILURE, detail=check, **base
        )
    moment = check.time.isoformat() if check.time is not None else None
    base.update(timestamp_time=moment, best_signature_time=moment)
    if check.tsa_certificate is not None:
        from asn1crypto import x509

        base.update(certificate_facts(x509.Certificate.load(check.tsa_certificate)))
    if not check.imprint_ok:
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.HASH_FAILURE,
            intact=False,
            detail="the time-stamp's message imprint is not the digest of the revision it "
            "covers (copied from elsewhere?)",
            **base,
        )
    if check.signature_ok is False:
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.SIG_CRYPTO_FAILURE,
            intact=True,
            signature_valid=False,
            **base,
        )
    coverage, revision = signed_state(sig)
    base["coverage"] = coverage
    changes = ChangeReport(NONE)
    if coverage != "entire-file":
        changes = (
            review_changes(sig.reader, revision, docmdp=None)
            if revision is not None
            else ChangeReport(OTHER, forbidden="the time-stamp does not cover its whole revision")
        )
    base.update(modification_level=changes.level_name, changes=list(changes.changes))
    if changes.forbidden is not None:
        return make_verdict(
            index,
            Indication.FAILED,
            SubIndication.MODIFIED_AFTER_SIGNING,
            intact=True,
            signature_valid=check.signature_ok,
            detail=f"changed after the time-stamp: {changes.forbidden}",
            **base,
        )
    if check.tsa_certificate is None:
        return make_verdict(
            index,
            Indication.INDETERMINATE,
            SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
            intact=True,
            detail=check.problem,
            **base,
        )
    warnings: list[str] = []
    tsa = check.tsa_certificate
    chain = _tsa_chain(tsa, check, policy, doc, None)
    if (
        chain.indication is Indication.INDETERMINATE
        and chain.sub_indication in _LATER_PROOF
        and check.time is not None
        and doc.later_timestamps(sig.signed_revision)
    ):
        # A later document time-stamp proves this one existed at its time:
        # its TSA's chain is judged as of then, with the data embedded for it.
        past = _tsa_chain(tsa, check, policy, doc, check.time)
        if past.indication is Indication.PASSED:
            chain = past
            warnings.append(
                f"the TSA's chain validated as of the time-stamp ({moment}), which a later "
                "document time-stamp proves"
            )
    warnings += chain.warnings
    return make_verdict(
        index,
        chain.indication,
        chain.sub_indication,
        intact=True,
        signature_valid=True,
        trusted=chain.trusted,
        revocation=chain.revocation,
        warnings=warnings,
        detail=chain.detail,
        **base,
    )


def _tsa_chain(
    tsa: bytes, check: TokenCheck, policy: VerifyPolicy, doc: _DocContext, moment: datetime | None
) -> Any:
    known = doc.knowledge
    return validate_chain(
        tsa,
        [*check.other_certificates, *(c.dump() for c in known.known_certs)],
        policy,
        moment=moment,
        embedded_ocsps=[o.ocsp_response_data.dump() for o in known.known_ocsps],
        embedded_crls=[c.crl_data.dump() for c in known.known_crls],
    )
