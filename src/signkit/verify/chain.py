"""Certificate chain, validity and revocation, as one result object (XML and cert check).

PDF signatures go through pyHanko's AdES processes instead; this is the same
certvalidator underneath, for signatures and certificates outside a PDF.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from signkit.verify.policy import VerifyPolicy
from signkit.verify.verdict import Indication, SubIndication


@dataclass(kw_only=True)
class ChainResult:
    """What the chain check established for one certificate."""

    indication: Indication
    """PASSED only for a valid, trusted, not revoked certificate."""
    sub_indication: SubIndication
    """Why not, in EN 319 102-1 terms."""
    trusted: bool
    """A path to a configured anchor was built and validated."""
    revocation: str
    """good, revoked, unknown, not-checked."""
    revocation_source: str | None = None
    """Where the revocation status came from (OCSP, CRL; embedded or fetched)."""
    chain_subjects: list[str] = field(default_factory=list)
    """The validated path, leaf first."""
    revoked_at: str | None = None
    """Revocation time, when revoked."""
    detail: str | None = None
    """The validator's message."""
    warnings: list[str] = field(default_factory=list)
    """What a person should know besides the result."""


def validate_chain(
    cert_der: bytes,
    others_der: Sequence[bytes],
    policy: VerifyPolicy,
    *,
    moment: datetime | None = None,
    usage: frozenset[str] = frozenset(),
    embedded_ocsps: Sequence[bytes] = (),
    embedded_crls: Sequence[bytes] = (),
) -> ChainResult:
    """Validate ``cert_der`` to the policy's anchors at ``moment`` (default: --at, else now)."""
    when = moment or policy.at or policy.now or datetime.now(UTC)
    mode = "hard" if policy.revocation == "off" else policy.revocation
    result = _attempt(cert_der, others_der, policy, when, usage, embedded_ocsps, embedded_crls)
    if (
        mode == "soft"
        and result.indication is Indication.INDETERMINATE
        and result.sub_indication is SubIndication.TRY_LATER
    ):
        soft = _attempt(
            cert_der, others_der, policy, when, usage, embedded_ocsps, embedded_crls, soft=True
        )
        if soft.indication is Indication.PASSED:
            soft.revocation = "unknown"
            soft.warnings.append(
                "revocation status unknown (no OCSP or CRL answer); accepted under "
                "--revocation soft"
            )
            return soft
    return result


def _attempt(
    cert_der: bytes,
    others_der: Sequence[bytes],
    policy: VerifyPolicy,
    when: datetime,
    usage: frozenset[str],
    embedded_ocsps: Sequence[bytes],
    embedded_crls: Sequence[bytes],
    *,
    soft: bool = False,
) -> ChainResult:
    from asn1crypto import crl, ocsp, x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator import errors as cverr
    from pyhanko_certvalidator.policy_decl import (
        AcceptAllAlgorithms,
        CertRevTrustPolicy,
        DisallowWeakAlgorithmsPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )

    cert = x509.Certificate.load(cert_der)
    others = [x509.Certificate.load(d) for d in others_der]
    roots = [x509.Certificate.load(d) for d in policy.anchors]
    if policy.revocation == "off":
        rule = RevocationCheckingRule.NO_CHECK
    elif soft:
        rule = RevocationCheckingRule.CHECK_IF_DECLARED_SOFT
    else:
        rule = RevocationCheckingRule.CHECK_IF_DECLARED
    fetch = not policy.offline
    local_ocsps = [ocsp.OCSPResponse.load(o) for o in embedded_ocsps]
    local_crls = [crl.CertificateList.load(c) for c in embedded_crls]
    backend = None
    if fetch:
        from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

        backend = AIOHttpFetcherBackend()
    vc = ValidationContext(
        fetcher_backend=backend,
        trust_roots=roots,
        other_certs=others,
        allow_fetching=fetch,
        revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy(rule, rule)),
        moment=when,
        algorithm_usage_policy=AcceptAllAlgorithms()
        if policy.allow_weak
        else DisallowWeakAlgorithmsPolicy(),  # type: ignore[no-untyped-call]
        ocsps=local_ocsps,
        crls=local_crls,
    )
    validator = CertificateValidator(cert, intermediate_certs=others, validation_context=vc)

    def fail(ind: Indication, sub: SubIndication, exc: Exception, **kw: Any) -> ChainResult:
        return ChainResult(
            indication=ind,
            sub_indication=sub,
            trusted=False,
            revocation=kw.pop("revocation", "unknown"),
            detail=str(exc)[:300],
            **kw,
        )

    try:
        path = asyncio.run(_validate(validator, usage, backend))
    except cverr.RevokedError as exc:
        revoked_at = None
        for prefix in ("revoked on ", "revoked at "):
            text = str(exc)
            if prefix in text:
                revoked_at = text.split(prefix, 1)[1].split(",")[0].strip().rstrip(".")
        return fail(
            Indication.INDETERMINATE,
            SubIndication.REVOKED_NO_POE,
            exc,
            revocation="revoked",
            revocation_source=_source(vc, local_ocsps, local_crls),
            revoked_at=revoked_at,
        )
    except cverr.NotYetValidError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.NOT_YET_VALID, exc)
    except cverr.ExpiredError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.OUT_OF_BOUNDS_NO_POE, exc)
    except cverr.InsufficientRevinfoError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.TRY_LATER, exc)
    except cverr.DisallowedAlgorithmError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.CRYPTO_CONSTRAINTS_FAILURE, exc)
    except cverr.PathBuildingError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.NO_CERTIFICATE_CHAIN_FOUND, exc)
    except cverr.InvalidCertificateError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.CHAIN_CONSTRAINTS_FAILURE, exc)
    except cverr.PathValidationError as exc:
        return fail(Indication.INDETERMINATE, SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, exc)
    subjects = [c.subject.human_friendly for c in path.iter_certs(include_root=True)][::-1]
    if policy.revocation == "off":
        revocation, source = "not-checked", None
    else:
        source = _source(vc, local_ocsps, local_crls)
        revocation = "good" if source else "unknown"
    warnings = ["revocation not checked (--revocation off)"] if policy.revocation == "off" else []
    if revocation == "unknown" and policy.revocation != "off":
        warnings.append("revocation status unknown: the certificate declares no OCSP or CRL")
    return ChainResult(
        indication=Indication.PASSED,
        sub_indication=SubIndication.OK,
        trusted=True,
        revocation=revocation,
        revocation_source=source,
        chain_subjects=subjects,
        warnings=warnings,
    )


async def _validate(validator: Any, usage: frozenset[str], backend: Any) -> Any:
    try:
        return await validator.async_validate_usage(set(usage))
    finally:
        # Close the HTTP session in the loop that opened it.
        if backend is not None:
            await backend.close()


def _source(vc: Any, local_ocsps: list[Any], local_crls: list[Any]) -> str | None:
    """OCSP before CRL, embedded before fetched: what the status rests on."""
    ocsps = list(vc.ocsps)
    crls = list(vc.crls)
    if ocsps:
        embedded = any(o.dump() in {lo.dump() for lo in local_ocsps} for o in ocsps)
        return "OCSP (embedded)" if embedded else "OCSP (fetched)"
    if crls:
        embedded = any(c.dump() in {lc.dump() for lc in local_crls} for c in crls)
        return "CRL (embedded)" if embedded else "CRL (fetched)"
    return None
