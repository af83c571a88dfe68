"""Verdicts in ETSI EN 319 102-1 terms, shared by PDF and XML verification.

A verdict is an object, never a bool: PASSED only when every check passed;
INDETERMINATE when something could not be established; FAILED when the
signature is proven bad. Each carries a sub-indication and one sentence for
a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any


class Indication(StrEnum):
    """EN 319 102-1 main indication."""

    PASSED = "PASSED"
    INDETERMINATE = "INDETERMINATE"
    FAILED = "FAILED"

    @property
    def rank(self) -> int:
        """Order of badness (the worst wins for a document and a batch)."""
        return {"PASSED": 0, "INDETERMINATE": 1, "FAILED": 2}[self.value]


class SubIndication(StrEnum):
    """EN 319 102-1 sub-indications (clause 5.1.3), plus two PDF/XML refinements.

    MODIFIED_AFTER_SIGNING and WRAPPED_SIGNED_ELEMENT are signkit's names for
    what the standard leaves to the validation policy (changes after signing
    that the certification level forbids; an XML signature whose signed
    element is not the one the document presents); both give FAILED.
    """

    OK = "OK"
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    NOT_YET_VALID = "NOT_YET_VALID"
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE_NO_POE = "CRYPTO_CONSTRAINTS_FAILURE_NO_POE"
    EXPIRED = "EXPIRED"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    OUT_OF_BOUNDS_NOT_REVOKED = "OUT_OF_BOUNDS_NOT_REVOKED"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    REVOCATION_OUT_OF_BOUNDS_NO_POE = "REVOCATION_OUT_OF_BOUNDS_NO_POE"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_POE = "NO_POE"
    TRY_LATER = "TRY_LATER"
    TIMESTAMP_ORDER_FAILURE = "TIMESTAMP_ORDER_FAILURE"
    POLICY_PROCESSING_ERROR = "POLICY_PROCESSING_ERROR"
    SIGNATURE_POLICY_NOT_AVAILABLE = "SIGNATURE_POLICY_NOT_AVAILABLE"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    GENERIC = "GENERIC"
    MODIFIED_AFTER_SIGNING = "MODIFIED_AFTER_SIGNING"
    WRAPPED_SIGNED_ELEMENT = "WRAPPED_SIGNED_ELEMENT"
    TIMESTAMP_MISMATCH = "TIMESTAMP_MISMATCH"
    """signkit's name for a time-stamp inside a signature that does not cover what
    it claims to (copied from another signature, or forged): FAILED."""


# pyHanko names one sub-indication NOT_YET_VALID under both FAILED and
# INDETERMINATE; the indication travels separately, so one member serves.
_SENTENCES: dict[SubIndication, str] = {
    SubIndication.OK: "The signature is intact, made by a trusted certificate valid at signing.",
    SubIndication.FORMAT_FAILURE: "The signature is malformed or missing.",
    SubIndication.HASH_FAILURE: "The signed content was altered after signing.",
    SubIndication.SIG_CRYPTO_FAILURE: "The signature value does not match the signer's key.",
    SubIndication.REVOKED: "The signer's certificate was revoked before the signature was made.",
    SubIndication.NOT_YET_VALID: "The signer's certificate was not yet valid at signing time.",
    SubIndication.SIG_CONSTRAINTS_FAILURE: "The signature does not meet the validation policy.",
    SubIndication.CHAIN_CONSTRAINTS_FAILURE: "The certificate chain does not meet the policy.",
    SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE: (
        "The signer's certificate chain could not be validated (revocation status or a "
        "certificate unavailable)."
    ),
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE: (
        "The signature uses a weak algorithm or key (SHA-1, RSA below 2048 bits)."
    ),
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE_NO_POE: (
        "The signature uses an algorithm no longer considered secure, with no proof it "
        "existed before then."
    ),
    SubIndication.EXPIRED: "The signer's certificate had expired when the signature was made.",
    SubIndication.OUT_OF_BOUNDS_NO_POE: (
        "The signer's certificate is expired or not yet valid, and nothing proves the "
        "signature was made while it was valid."
    ),
    SubIndication.OUT_OF_BOUNDS_NOT_REVOKED: (
        "The signer's certificate is outside its validity, though not revoked."
    ),
    SubIndication.REVOKED_NO_POE: (
        "The signer's certificate is revoked, and nothing proves the signature was made "
        "before the revocation."
    ),
    SubIndication.REVOKED_CA_NO_POE: "A CA certificate in the chain is revoked.",
    SubIndication.REVOCATION_OUT_OF_BOUNDS_NO_POE: (
        "No revocation information fresh enough for the signature time."
    ),
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: (
        "The signer's certificate does not chain to a configured trust anchor."
    ),
    SubIndication.NO_SIGNING_CERTIFICATE_FOUND: "The signer's certificate is not in the signature.",
    SubIndication.NO_POE: "Nothing proves when the signature was made.",
    SubIndication.TRY_LATER: "The revocation status is not available yet; try again later.",
    SubIndication.TIMESTAMP_ORDER_FAILURE: "The time-stamps are in an impossible order.",
    SubIndication.POLICY_PROCESSING_ERROR: "The signature policy could not be processed.",
    SubIndication.SIGNATURE_POLICY_NOT_AVAILABLE: "The signature policy is not available.",
    SubIndication.SIGNED_DATA_NOT_FOUND: "The signed data could not be found.",
    SubIndication.GENERIC: "The signature could not be validated.",
    SubIndication.MODIFIED_AFTER_SIGNING: (
        "The document was changed after signing in a way the signature does not allow."
    ),
    SubIndication.WRAPPED_SIGNED_ELEMENT: (
        "The signed element is not the one the document presents (signature wrapping)."
    ),
    SubIndication.TIMESTAMP_MISMATCH: (
        "A time-stamp in the signature does not cover it (copied from elsewhere or forged)."
    ),
}


def sentence(sub: SubIndication) -> str:
    """One human sentence for a sub-indication."""
    return _SENTENCES[sub]


@dataclass(kw_only=True)
class SignatureVerdict:
    """What was established about one signature."""

    index: int
    """Position of the signature in the document (0 = first)."""
    indication: Indication
    """PASSED, INDETERMINATE or FAILED."""
    sub_indication: SubIndication
    """Why (OK when PASSED)."""
    sentence: str
    """One sentence for a person."""
    name: str | None = None
    """Signature field name (PDF) or Id (XML)."""
    kind: str = "signature"
    """signature, or document-timestamp (a PDF document time-stamp, judged as a time-stamp)."""
    intact: bool | None = None
    """The signed bytes / elements match their digests."""
    signature_valid: bool | None = None
    """The signature value verifies with the signer's public key."""
    trusted: bool | None = None
    """The signer's chain ends at a configured anchor."""
    signer_subject: str | None = None
    """Signer certificate subject (RFC 4514)."""
    signer_issuer: str | None = None
    """Signer certificate issuer."""
    signer_serial: str | None = None
    """Signer certificate serial (hex)."""
    signer_sha256: str | None = None
    """Signer certificate fingerprint."""
    claimed_signing_time: str | None = None
    """The signer's own claim (signingTime attribute, /M, XAdES SigningTime)."""
    timestamp_time: str | None = None
    """Time in the signature time-stamp token, if any."""
    archive_timestamp_times: list[str] = field(default_factory=list)
    """Times of the valid archive time-stamps (B-LTA), oldest first."""
    best_signature_time: str | None = None
    """The time the validation relied on (time-stamp, else validation time)."""
    coverage: str | None = None
    """entire-file, entire-revision, partial, element:<what>."""
    modification_level: str | None = None
    """Changes after signing: none, lta-updates, form-filling, annotations, other."""
    changes: list[str] = field(default_factory=list)
    """Each kind of change after signing, one phrase each (PDF)."""
    certification_level: int | None = None
    """DocMDP level of a certification signature (1-3), else None."""
    level: str | None = None
    """PAdES / XAdES baseline level reached (B-B, B-T, B-LT, B-LTA)."""
    revocation: str | None = None
    """good, revoked, unknown, not-checked."""
    revocation_source: str | None = None
    """Where the revocation evidence came from: embedded, fetched, or None."""
    chain: list[str] = field(default_factory=list)
    """The certification path as validated, signer first, anchor last (subjects)."""
    weak_algorithms: list[str] = field(default_factory=list)
    """Weak algorithms or key sizes found (reported even when accepted)."""
    warnings: list[str] = field(default_factory=list)
    """What a person should know besides the verdict."""
    detail: str | None = None
    """The validator's own message, when it gave one."""
    attachment: str | None = None
    """The attachment of a package (edXML) the signature belongs to, by name."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        # Shallow on purpose: every field is a plain value (asdict would deep-copy).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["weak_algorithms"] = list(self.weak_algorithms)
        data["warnings"] = list(self.warnings)
        data["changes"] = list(self.changes)
        data["archive_timestamp_times"] = list(self.archive_timestamp_times)
        data["chain"] = list(self.chain)
        data["indication"] = self.indication.value
        data["sub_indication"] = self.sub_indication.value
        return data


# What these establish is proof that the signature is bad: never less than FAILED.
_PROVEN_BAD = frozenset(
    {
        SubIndication.HASH_FAILURE,
        SubIndication.SIG_CRYPTO_FAILURE,
        SubIndication.MODIFIED_AFTER_SIGNING,
        SubIndication.WRAPPED_SIGNED_ELEMENT,
    }
)


def make_verdict(
    index: int, indication: Indication, sub: SubIndication, **details: Any
) -> SignatureVerdict:
    """A verdict with its standard sentence.

    FAILED dominates (EN 319 102-1): altered content (``intact=False``), a
    signature value that does not verify with the identified signer's key
    (``signature_valid=False``) or a failure sub-indication make the verdict
    FAILED whatever the chain said. A value that does not verify with a
    certificate that is not the signer's (NO_SIGNING_CERTIFICATE_FOUND)
    proves nothing about the signature, and stays INDETERMINATE.
    """
    if details.get("intact") is False and indication is not Indication.FAILED:
        indication, sub = Indication.FAILED, SubIndication.HASH_FAILURE
    elif (
        details.get("signature_valid") is False
        and indication is not Indication.FAILED
        and sub is not SubIndication.NO_SIGNING_CERTIFICATE_FOUND
    ):
        indication, sub = Indication.FAILED, SubIndication.SIG_CRYPTO_FAILURE
    elif sub in _PROVEN_BAD:
        indication = Indication.FAILED
    skew = local_time_skew(details.get("claimed_signing_time"), details.get("timestamp_time"))
    if skew is not None:
        details["warnings"] = [*details.get("warnings", []), skew]
    return SignatureVerdict(
        index=index, indication=indication, sub_indication=sub, sentence=sentence(sub), **details
    )


def local_time_skew(claimed: str | None, stamped: str | None) -> str | None:
    """A warning when the claimed signing time runs about 7 hours ahead of the
    time-stamp: signers that write Vietnam's local time into signingTime
    labelled as UTC (seen in real files). Only a warning: the time-stamp is
    what counts, and the verdict does not change."""
    if not claimed or not stamped:
        return None
    try:
        claimed_at, stamped_at = datetime.fromisoformat(claimed), datetime.fromisoformat(stamped)
        ahead = (claimed_at - stamped_at).total_seconds()
    except (TypeError, ValueError):  # naive vs aware, or not ISO 8601
        return None
    if abs(ahead - 7 * 3600) <= 15 * 60:
        return (
            "the claimed signing time is 7 hours ahead of the time-stamp: the signer "
            "probably wrote local time (UTC+07:00) labelled as UTC"
        )
    return None


def worst(indications: list[Indication]) -> Indication:
    """The worst indication (PASSED for an empty list is never used: callers check)."""
    return max(indications, key=lambda i: i.rank)


@dataclass(kw_only=True)
class DocumentVerdict:
    """The verdict for one document: the worst of its signatures."""

    input: str
    """The document."""
    format: str
    """pdf, xml or edxml."""
    indication: Indication
    """Worst indication of its signatures (FAILED when it has none)."""
    sub_indication: SubIndication
    """The sub-indication of the worst signature."""
    sentence: str
    """One sentence for a person."""
    signatures: list[SignatureVerdict] = field(default_factory=list)
    """Every signature, in document order."""
    sha256: str | None = None
    """Of the file as verified."""
    etsi: list[Any] = field(default_factory=list)
    """ETSI TS 119 102-2 report parts of its signatures (with --report-format etsi)."""
    thumbnails: list[Any] = field(default_factory=list)
    """Rendered signed pages for people's reports (verify/thumbnails.py), not JSON."""

    @classmethod
    def of(
        cls, input: str, fmt: str, signatures: list[SignatureVerdict], sha256: str | None
    ) -> DocumentVerdict:
        """Summarise the signatures; a document without any is FAILED.

        The worst verdict wins, FAILED before INDETERMINATE. A document
        time-stamp that is not FAILED counts only when the document has no
        signature: a TSA nobody configured to trust makes that time-stamp
        INDETERMINATE, not the signatures it protects.
        """
        if not signatures:
            return cls(
                input=input,
                format=fmt,
                indication=Indication.FAILED,
                sub_indication=SubIndication.FORMAT_FAILURE,
                sentence="The document carries no signature.",
                sha256=sha256,
            )
        counted = [
            s for s in signatures if s.kind == "signature" or s.indication is Indication.FAILED
        ] or signatures
        bad = max(counted, key=lambda s: s.indication.rank)
        text = bad.sentence
        if len(signatures) > 1:
            text = f"signature {bad.index + 1} of {len(signatures)}: {text}"
        return cls(
            input=input,
            format=fmt,
            indication=bad.indication,
            sub_indication=bad.sub_indication,
            sentence=text,
            signatures=signatures,
            sha256=sha256,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {
            "input": self.input,
            "format": self.format,
            "indication": self.indication.value,
            "sub_indication": self.sub_indication.value,
            "sentence": self.sentence,
            "sha256": self.sha256,
            "signatures": [s.to_json() for s in self.signatures],
        }
