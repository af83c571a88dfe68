"""The one certificate path validator: chain, validity, key usage and revocation.

``validate_chain`` answers for one certificate with a result object (cert
check, XML signatures, time-stamp authorities); ``check_signer`` is the
pre-signing check built on it, which refuses an unusable signer with an
error. PDF signatures go through pyHanko's AdES processes, on the same
pyhanko-certvalidator underneath.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from signkit.errors import CertificateError, RevocationError, RevocationUnreachableError
from signkit.pki.anchors import RevocationMode, TrustSpec, load_certificates
from signkit.texts import shorten
from signkit.verify.verdict import Indication, SubIndication


class ChainSettings(Protocol):
    """What a chain validation trusts and how strict it is (VerifyPolicy is one)."""

    @property
    def anchors(self) -> tuple[bytes, ...]:
        """Trusted certificates (DER)."""
        ...

    @property
    def intermediates(self) -> tuple[bytes, ...]:
        """Untrusted certificates offered for path building (DER)."""
        ...

    @property
    def revocation(self) -> RevocationMode:
        """hard, soft or off."""
        ...

    @property
    def offline(self) -> bool:
        """No network at all."""
        ...

    @property
    def allow_weak(self) -> bool:
        """Accept SHA-1 and small keys."""
        ...

    @property
    def at(self) -> datetime | None:
        """Validate as of this moment."""
        ...

    @property
    def now(self) -> datetime | None:
        """The run's validation time."""
        ...


@dataclass(frozen=True, kw_only=True)
class Settings:
    """A ChainSettings of its own, for callers without a verification policy."""

    anchors: tuple[bytes, ...] = ()
    intermediates: tuple[bytes, ...] = ()
    revocation: RevocationMode = "soft"
    offline: bool = False
    allow_weak: bool = False
    at: datetime | None = None
    now: datetime | None = None


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
    path: tuple[bytes, ...] = ()
    """The validated path, leaf first (DER)."""
    ocsp_responses: tuple[bytes, ...] = ()
    """OCSP responses the validation had at hand (embedded and fetched, DER)."""
    crls: tuple[bytes, ...] = ()
    """CRLs the validation had at hand (embedded and fetched, DER)."""
    revoked_at: str | None = None
    """Revocation time, when revoked."""
    detail: str | None = None
    """The validator's message."""
    warnings: list[str] = field(default_factory=list)
    """What a person should know besides the result."""


def preload(spec: TrustSpec) -> None:
    """Import the validation stack now (before worker processes fork, so they
    share it); the HTTP fetchers (~0.3 s) only when revocation will be fetched
    (a chain to complete by AIA imports them when it comes to that)."""
    import pyhanko_certvalidator  # noqa: F401

    if not spec.offline and spec.revocation != "off":
        from pyhanko_certvalidator.fetchers import aiohttp_fetchers  # noqa: F401


def no_anchors_note(has_root: bool, where: str) -> str:
    """The one rule when no trust anchor is configured, said the same way by
    `sign` and `cert check`: the chain is built to the root that came with the
    certificate (``where``: the token, the file, the document), everything else
    is checked, and the person is told the root was not checked against a
    trusted list."""
    if has_root:
        return (
            f"no trust anchors configured (--trust): the chain ends at a root supplied by "
            f"{where} and was not checked against a trusted list"
        )
    return f"no trust anchors configured (--trust) and no root supplied by {where}"


def validate_chain(
    cert_der: bytes,
    others_der: Sequence[bytes],
    policy: ChainSettings,
    *,
    moment: datetime | None = None,
    usage: frozenset[str] = frozenset(),
    embedded_ocsps: Sequence[bytes] = (),
    embedded_crls: Sequence[bytes] = (),
    soft_fallback: bool = True,
) -> ChainResult:
    """Validate ``cert_der`` to the policy's anchors at ``moment`` (default: --at, else now).

    ``others_der`` and the policy's intermediates serve for path building
    only; AIA fetches the missing ones unless offline. Revocation: hard
    requires an answer wherever the certificate declares where to ask; soft
    accepts a certificate whose status nobody could give, and says so; with
    ``soft_fallback`` also one whose answers cannot be used (stale, or from
    an issuer that cannot be validated): unknown, reported, verdict unchanged.
    """
    when = moment or policy.at or policy.now or datetime.now(UTC)
    others = list(dict.fromkeys([*others_der, *policy.intermediates]))
    ocsps, crls = list(embedded_ocsps), list(embedded_crls)
    key = None
    if policy.offline:
        # Offline, the answer depends on these inputs alone: a batch signed by
        # one clerk validates its one chain once, never another input's answer.
        key = (
            cert_der, tuple(others), tuple(policy.anchors), policy.revocation,
            policy.allow_weak, when, usage, tuple(ocsps), tuple(crls), soft_fallback,
        )  # fmt: skip
        known = _ANSWERS.get(key)
        if known is not None:
            _ANSWERS.move_to_end(key)
            return copy.deepcopy(known)
    result = _validate_chain(cert_der, others, policy, when, usage, ocsps, crls, soft_fallback)
    if key is not None:
        _ANSWERS[key] = copy.deepcopy(result)
        while len(_ANSWERS) > _ANSWERS_KEPT:
            _ANSWERS.popitem(last=False)
    return result


_ANSWERS: OrderedDict[tuple[Any, ...], ChainResult] = OrderedDict()
"""Offline answers of this process, by every input that decides them."""
_ANSWERS_KEPT = 256


def _validate_chain(
    cert_der: bytes,
    others: list[bytes],
    policy: ChainSettings,
    when: datetime,
    usage: frozenset[str],
    ocsps: list[bytes],
    crls: list[bytes],
    soft_fallback: bool,
) -> ChainResult:
    result = _attempt(cert_der, others, policy, when, usage, ocsps, crls)
    if (
        soft_fallback
        and policy.revocation == "soft"
        and result.sub_indication is SubIndication.TRY_LATER
    ):
        unchecked = Settings(
            anchors=policy.anchors,
            revocation="off",
            offline=policy.offline,
            allow_weak=policy.allow_weak,
        )
        retry = _attempt(cert_der, others, unchecked, when, usage, ocsps, crls)
        if retry.indication is Indication.PASSED:
            retry.revocation = "unknown"
            retry.warnings = [
                "revocation status could not be established "
                f"({shorten(result.detail or '', 200)}); accepted under --revocation soft"
            ]
            return retry
    return result


def _attempt(
    cert_der: bytes,
    others_der: list[bytes],
    policy: ChainSettings,
    when: datetime,
    usage: frozenset[str],
    embedded_ocsps: list[bytes],
    embedded_crls: list[bytes],
) -> ChainResult:
    import asyncio

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
    rule = {
        "off": RevocationCheckingRule.NO_CHECK,
        # A soft check still refuses a certificate an answer says is revoked.
        "soft": RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
        "hard": RevocationCheckingRule.CHECK_IF_DECLARED,
    }[policy.revocation]
    fetch = not policy.offline
    local_ocsps = [ocsp.OCSPResponse.load(o) for o in embedded_ocsps]
    local_crls = [crl.CertificateList.load(c) for c in embedded_crls]
    backend = None
    if fetch:
        from signkit.pki.http import fetcher_backend

        backend = fetcher_backend()
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
            detail=shorten(str(exc), 300),
            ocsp_responses=_dumps(vc.ocsps),
            crls=_dumps(vc.crls),
            **kw,
        )

    try:
        path = asyncio.run(_validate(validator, usage, backend))
    except cverr.RevokedError as exc:
        # the moment from the exception, not its English text ("at 00:00:00 on …")
        moment = getattr(exc, "revocation_dt", None)
        revoked_at = (
            f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if isinstance(moment, datetime) else None
        )
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
    certs = list(path.iter_certs(include_root=True))[::-1]
    warnings: list[str] = []
    source = None
    if policy.revocation == "off":
        revocation = "not-checked"
        warnings.append("revocation not checked (--revocation off)")
    else:
        source = _source(vc, local_ocsps, local_crls)
        revocation = "good" if source else "unknown"
        if source is None and _declares_revocation(cert):
            warnings.append(
                "revocation status unknown (no OCSP or CRL answer); accepted under "
                "--revocation soft"
            )
        elif source is None:
            warnings.append("revocation status unknown: the certificate declares no OCSP or CRL")
    return ChainResult(
        indication=Indication.PASSED,
        sub_indication=SubIndication.OK,
        trusted=True,
        revocation=revocation,
        revocation_source=source,
        chain_subjects=[c.subject.human_friendly for c in certs],
        path=tuple(c.dump() for c in certs),
        ocsp_responses=_dumps(vc.ocsps),
        crls=_dumps(vc.crls),
        warnings=warnings,
    )


def _dumps(items: Any) -> tuple[bytes, ...]:
    return tuple(dict.fromkeys(item.dump() for item in items))


def _declares_revocation(cert: Any) -> bool:
    return bool(cert.ocsp_urls or cert.crl_distribution_points)


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


@dataclass(frozen=True, kw_only=True)
class SignerCheck:
    """What the pre-signing check of the signer certificate established."""

    subject: str
    """Signer subject."""
    sha256: str
    """Signer certificate fingerprint."""
    not_after: datetime
    """End of validity."""
    chain: tuple[bytes, ...]
    """Certification path, leaf first, as validated (DER)."""
    anchored: Literal["configured", "token", "none"]
    """Whether the chain ends at a configured anchor, a root from the token, or nowhere."""
    revocation: Literal["good", "unknown", "not-checked"]
    """Revocation status established for the signer."""
    ocsp_responses: tuple[bytes, ...] = ()
    """OCSP responses fetched (DER), kept as evidence and for LTV."""
    crls: tuple[bytes, ...] = ()
    """CRLs fetched (DER), kept as evidence and for LTV."""
    warnings: tuple[str, ...] = ()
    """What a person should know before relying on the signatures."""
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When the check ran."""

    def evidence(self, *, ocsp_der: bool = False) -> list[dict[str, str]]:
        """Hashes of the revocation evidence, for reports and the audit log;
        ``ocsp_der`` adds each OCSP response itself (base64 DER, a few KB)."""
        import base64

        return [
            {"kind": "ocsp", "sha256": hashlib.sha256(o).hexdigest()}
            | ({"der": base64.b64encode(o).decode("ascii")} if ocsp_der else {})
            for o in self.ocsp_responses
        ] + [{"kind": "crl", "sha256": hashlib.sha256(c).hexdigest()} for c in self.crls]


_REVOKED = frozenset({SubIndication.REVOKED_NO_POE, SubIndication.REVOKED})
_OUT_OF_DATES = frozenset(
    {SubIndication.NOT_YET_VALID, SubIndication.OUT_OF_BOUNDS_NO_POE, SubIndication.EXPIRED}
)


def check_signer(
    cert_der: bytes,
    chain_der: Sequence[bytes],
    spec: TrustSpec,
    *,
    now: datetime | None = None,
    require_signing_usage: bool = True,
) -> SignerCheck:
    """Refuse a signer that is expired, not yet valid, revoked or not for signing.

    Raises CertificateError (exit 5) for those, RevocationError when
    ``revocation='hard'`` and the status cannot be established. Without
    configured anchors the chain may end at a root the token supplied, and
    the check says so.
    """
    from asn1crypto import x509

    from signkit.pki.certs import load_certificate

    now = now or datetime.now(UTC)
    cert = x509.Certificate.load(cert_der)
    subject = load_certificate(cert_der, source="signer certificate").subject.rfc4514_string()
    name = f"signer certificate '{subject}'"
    validity = cert["tbs_certificate"]["validity"]
    not_before = validity["not_before"].native
    not_after = validity["not_after"].native
    if now < not_before:
        raise CertificateError(f"not valid before {not_before:%Y-%m-%d %H:%M} UTC", subject=name)
    if now > not_after:
        raise CertificateError(f"expired on {not_after:%Y-%m-%d %H:%M} UTC", subject=name)
    usage = cert.key_usage_value.native if cert.key_usage_value is not None else None
    signing_bits = {"digital_signature", "non_repudiation"}
    if require_signing_usage and usage is not None and not (signing_bits & set(usage)):
        raise CertificateError(
            f"key usage ({', '.join(sorted(usage))}) allows neither digitalSignature "
            "nor nonRepudiation",
            subject=name,
        )

    configured = tuple(load_certificates(spec.anchors))
    warnings: list[str] = []
    anchored: Literal["configured", "token", "none"] = "configured"
    roots = configured
    if not roots:
        roots = tuple(
            d for d in chain_der if x509.Certificate.load(d).self_signed in ("maybe", "yes")
        )
        anchored = "token" if roots else "none"
        warnings.append(no_anchors_note(bool(roots), "the token"))
    settings = Settings(anchors=roots, revocation=spec.revocation, offline=spec.offline)
    result = None
    if spec.revocation == "off" and roots and not spec.offline:
        # Nothing to fetch when the chain is already at hand: skip the network stack.
        result = validate_chain(
            cert_der,
            chain_der,
            Settings(anchors=roots, revocation="off", offline=True),
            moment=now,
            soft_fallback=False,
        )
        if result.sub_indication is SubIndication.NO_CERTIFICATE_CHAIN_FOUND:
            result = None
    if result is None:
        # Before signing, an answer that cannot be used is an error, not an unknown.
        result = validate_chain(cert_der, chain_der, settings, moment=now, soft_fallback=False)
    chain: tuple[bytes, ...] = result.path or (cert_der,)
    sub = result.sub_indication
    detail = result.detail or ""
    if sub in _REVOKED:
        raise CertificateError(f"revoked ({detail})", subject=name)
    if sub in _OUT_OF_DATES:
        raise CertificateError(detail, subject=name)
    if sub is SubIndication.TRY_LATER:
        raise (RevocationError if spec.offline else RevocationUnreachableError)(
            f"revocation status could not be established ({detail})",
            subject=name,
            hint="check network access to the OCSP/CRL URLs, or use --revocation soft",
        )
    if result.indication is not Indication.PASSED:
        if anchored == "configured":
            raise CertificateError(
                f"does not chain to a configured trust anchor ({detail})",
                subject=name,
                hint="add the issuing CA's root with --trust",
            )
        warnings.append(f"chain not validated ({detail})")
        anchored = "none"
    ocsps, crls = result.ocsp_responses, result.crls
    if spec.revocation == "off":
        revocation: Literal["good", "unknown", "not-checked"] = "not-checked"
        warnings.append("revocation not checked (--revocation off)")
    elif ocsps or crls:
        revocation = "good"
    else:
        revocation = "unknown"
        if spec.revocation == "hard":
            raise (RevocationError if spec.offline else RevocationUnreachableError)(
                "revocation status could not be established (no OCSP or CRL answer)",
                subject=name,
                hint="check network access to the OCSP/CRL URLs, or use --revocation soft",
            )
        warnings.append("revocation status unknown: no OCSP or CRL answer")
    return SignerCheck(
        subject=subject,
        sha256=hashlib.sha256(cert_der).hexdigest(),
        not_after=not_after,
        chain=chain,
        anchored=anchored,
        revocation=revocation,
        ocsp_responses=ocsps,
        crls=crls,
        warnings=tuple(warnings),
        checked_at=now,
    )
