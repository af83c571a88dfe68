"""Verdict aggregation (verify/verdict.py): FAILED dominates INDETERMINATE for a
signature and for a document, PDF and XML alike (EN 319 102-1)."""

from __future__ import annotations

import pytest

from signkit.verify.verdict import DocumentVerdict, Indication, SubIndication, make_verdict


@pytest.mark.parametrize(
    ("details", "sub", "expected"),
    [
        ({"intact": False}, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, "HASH_FAILURE"),
        ({"signature_valid": False}, SubIndication.TRY_LATER, "SIG_CRYPTO_FAILURE"),
        ({}, SubIndication.MODIFIED_AFTER_SIGNING, "MODIFIED_AFTER_SIGNING"),
        ({}, SubIndication.WRAPPED_SIGNED_ELEMENT, "WRAPPED_SIGNED_ELEMENT"),
    ],
)
def test_proof_of_a_bad_signature_is_failed_whatever_the_chain(
    details: dict[str, bool], sub: SubIndication, expected: str
) -> None:
    """Regression: a tampered signature whose chain could not be built was
    INDETERMINATE (the chain's verdict), not FAILED."""
    verdict = make_verdict(0, Indication.INDETERMINATE, sub, **details)
    assert (verdict.indication, verdict.sub_indication.value) == (Indication.FAILED, expected)


def test_a_value_checked_against_a_certificate_not_the_signers_proves_nothing() -> None:
    verdict = make_verdict(
        0,
        Indication.INDETERMINATE,
        SubIndication.NO_SIGNING_CERTIFICATE_FOUND,
        signature_valid=False,
    )
    assert verdict.indication is Indication.INDETERMINATE


def _entry(index: int, indication: Indication, kind: str = "signature") -> object:
    sub = {
        Indication.PASSED: SubIndication.OK,
        Indication.INDETERMINATE: SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
        Indication.FAILED: SubIndication.HASH_FAILURE,
    }[indication]
    return make_verdict(index, indication, sub, kind=kind)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # XML or PDF: any FAILED signature makes the document FAILED
        ([Indication.INDETERMINATE, Indication.FAILED], Indication.FAILED),
        ([Indication.FAILED, Indication.INDETERMINATE], Indication.FAILED),
        ([Indication.PASSED, Indication.INDETERMINATE], Indication.INDETERMINATE),
        # a document time-stamp whose TSA nobody trusts does not lower the signatures
        ([Indication.PASSED, (Indication.INDETERMINATE, "document-timestamp")], Indication.PASSED),
        # one whose imprint is wrong does
        ([Indication.PASSED, (Indication.FAILED, "document-timestamp")], Indication.FAILED),
        # time-stamps alone are judged as they are
        ([(Indication.INDETERMINATE, "document-timestamp")], Indication.INDETERMINATE),
    ],
)
def test_document_verdict(entries: list[object], expected: Indication) -> None:
    made = []
    for n, entry in enumerate(entries):
        indication, kind = entry if isinstance(entry, tuple) else (entry, "signature")
        made.append(_entry(n, indication, kind))
    for fmt in ("pdf", "xml"):
        doc = DocumentVerdict.of("d", fmt, made, None)  # type: ignore[arg-type]
        assert doc.indication is expected
