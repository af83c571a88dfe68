"""What a verification trusts and how strict it is (picklable: it crosses processes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from signkit.pki.anchors import RevocationMode


@dataclass(frozen=True, kw_only=True)
class VerifyPolicy:
    """Trust anchors, revocation, time and algorithm policy of one verification run."""

    anchors: tuple[bytes, ...] = ()
    """Trusted certificates (DER); nothing else is trusted."""
    intermediates: tuple[bytes, ...] = ()
    """Untrusted certificates (DER) offered for path building (--intermediates)."""
    revocation: RevocationMode = "soft"
    """hard: unknown status is INDETERMINATE; soft: reported only; off: not checked."""
    offline: bool = False
    """No network at all: no AIA, OCSP or CRL fetching; embedded data only."""
    at: datetime | None = None
    """Validate as of this moment instead of now."""
    allow_weak: bool = False
    """Accept SHA-1 and RSA < 2048 (still reported)."""
    diff_analysis: bool = True
    """Judge incremental updates after each PDF signature (without it, a signature
    followed by any update is INDETERMINATE at best)."""
    etsi: bool = False
    """Also build ETSI TS 119 102-2 report parts for PDF signatures."""
    now: datetime | None = None
    """The run's validation time (one instant for the whole batch); None: each call's now."""
    password: str | None = field(default=None, repr=False, compare=False)
    """Opens the PDFs that need a password to be read (tried after the empty
    one); it decides no verdict, so it is no part of the policy's key."""

    @property
    def key(self) -> str:
        """Identity of the policy (worker caches are keyed by it)."""
        h = hashlib.sha256()
        for der in self.anchors:
            h.update(der)
        h.update(b"intermediates")
        for der in self.intermediates:
            h.update(der)
        h.update(repr((self.revocation, self.offline, self.at, self.allow_weak, self.now)).encode())
        return h.hexdigest()


RevocationRule = Literal["required", "soft", "off"]


def validation_spec(policy: VerifyPolicy, rule: RevocationRule) -> Any:
    """pyHanko's SignatureValidationSpec for this policy and revocation rule."""
    from asn1crypto import x509
    from pyhanko.sign.validation.policy_decl import (
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import (
        AcceptAllAlgorithms,
        CertRevTrustPolicy,
        DisallowWeakAlgorithmsPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )
    from pyhanko_certvalidator.registry import SimpleTrustManager

    check = {
        # Checked wherever the certificate declares where to look (as before signing).
        "required": RevocationCheckingRule.CHECK_IF_DECLARED,
        "soft": RevocationCheckingRule.CHECK_IF_DECLARED_SOFT,
        "off": RevocationCheckingRule.NO_CHECK,
    }[rule]
    algorithms: Any = AcceptAllAlgorithms() if policy.allow_weak else DisallowWeakAlgorithmsPolicy()  # type: ignore[no-untyped-call]
    # An explicit (possibly empty) list: pyHanko falls back to the OS store on None.
    roots = [x509.Certificate.load(der) for der in policy.anchors]
    cert_policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=roots),
        revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy(check, check)),
        algorithm_usage_policy=algorithms,
    )
    fetching = (
        RevinfoOnlineFetchingRule.LOCAL_ONLY
        if policy.offline
        else RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH
    )
    return SignatureValidationSpec(
        cert_validation_policy=cert_policy,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=fetching),
        signature_algorithm_policy=CMSAlgorithmUsagePolicy.lift_policy(algorithms),
    )


def timing(policy: VerifyPolicy) -> Any:
    """pyHanko timing info: the run's instant, or the --at moment as a point-in-time
    validation."""
    from pyhanko_certvalidator.ltv.types import ValidationTimingInfo

    if policy.at is not None:
        return ValidationTimingInfo(
            validation_time=policy.at, best_signature_time=policy.at, point_in_time_validation=True
        )
    if policy.now is not None:
        return ValidationTimingInfo(
            validation_time=policy.now,
            best_signature_time=policy.now,
            point_in_time_validation=False,
        )
    return None


def moment(policy: VerifyPolicy) -> datetime:
    """The instant a validation is about: --at, else the run's, else now."""
    from datetime import UTC

    return policy.at or policy.now or datetime.now(UTC)


def weak_algorithms(digest: str, signature: str, key_algo: str, key_bits: int) -> list[str]:
    """SHA-1/MD5 digests and RSA/DSA keys under 2048 bits, named for the report."""
    weak = []
    if digest.lower() in ("sha1", "md5", "md2"):
        weak.append(f"digest {digest.upper()}")
    if "sha1" in signature.lower() or "md5" in signature.lower():
        weak.append(f"signature algorithm {signature}")
    if key_algo in ("rsa", "rsassa_pss", "dsa") and key_bits < 2048:
        weak.append(f"{key_algo.upper()}-{key_bits} key")
    return list(dict.fromkeys(weak))
