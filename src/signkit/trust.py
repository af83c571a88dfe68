"""Trust anchors, chains and revocation for the signer (before signing) and for LTV.

Built on pyhanko-certvalidator. Only the configured anchors are trusted; a
run without ``--trust`` still checks validity, key usage and revocation, and
says plainly that the chain ends at a root the token supplied.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from signkit.errors import (
    CertificateError,
    ConfigError,
    InputError,
    RevocationError,
    RevocationUnreachableError,
)

RevocationMode = Literal["hard", "soft", "off"]


@dataclass(frozen=True, kw_only=True)
class TrustSpec:
    """Which anchors to trust and how strictly to check revocation."""

    anchors: tuple[Path, ...] = ()
    """Files (PEM/DER, bundles) or directories of trust anchors."""
    revocation: RevocationMode = "soft"
    """hard: unknown status refuses; soft: warns; off: not checked."""
    offline: bool = False
    """No network: no AIA, OCSP or CRL fetching."""


def load_certificates(paths: Iterable[Path]) -> list[bytes]:
    """DER certificates from PEM/DER files, PEM bundles, PKCS#7 bundles and directories."""
    from asn1crypto import cms, pem

    found: list[bytes] = []
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read ({exc.strerror})", subject=str(file)) from None
            blobs: list[bytes] = []
            if pem.detect(data):
                for kind, _, der in pem.unarmor(data, multiple=True):
                    if kind in ("CERTIFICATE", "TRUSTED CERTIFICATE", "PKCS7"):
                        blobs.append(der)
            else:
                blobs.append(data)
            for blob in blobs:
                found.extend(_certs_from_blob(blob, cms, str(file)))
    return found


def _certs_from_blob(blob: bytes, cms: Any, source: str) -> list[bytes]:
    from asn1crypto import x509

    try:
        info = cms.ContentInfo.load(blob)
        if info["content_type"].native == "signed_data":
            return [c.chosen.dump() for c in info["content"]["certificates"]]
    except (ValueError, TypeError, KeyError):
        pass
    try:
        cert = x509.Certificate.load(blob)
        cert.native  # noqa: B018 - force a full parse so garbage fails here
        return [cert.dump()]
    except (ValueError, TypeError) as exc:
        raise InputError("not a certificate (PEM, DER or PKCS#7)", subject=source) from exc


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


_MODE = {"hard": "hard-fail", "soft": "soft-fail", "off": "soft-fail"}


def preload(spec: TrustSpec) -> None:
    """Import the validation stack now (before worker processes fork, so they
    share it); the HTTP fetchers (~0.3 s) only when revocation will be fetched
    (a chain to complete by AIA imports them when it comes to that)."""
    import pyhanko_certvalidator  # noqa: F401

    if not spec.offline and spec.revocation != "off":
        from pyhanko_certvalidator.fetchers import aiohttp_fetchers  # noqa: F401


def _fetcher_backend(spec: TrustSpec) -> Any:
    if spec.offline:
        return None
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    return AIOHttpFetcherBackend()


async def _validate(validator: Any, backend: Any) -> Any:
    try:
        return await validator.async_validate_usage(set())
    finally:
        # Close the HTTP session in the loop that opened it.
        if backend is not None:
            await backend.close()


def _validation_context(
    roots: Sequence[Any], others: Sequence[Any], spec: TrustSpec, moment: datetime, backend: Any
) -> Any:
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy,
        RevocationCheckingPolicy,
        RevocationCheckingRule,
    )

    # AIA fetching completes chains even when revocation is not checked.
    fetch = not spec.offline
    policy = None
    if spec.revocation == "off":
        no_check = RevocationCheckingRule.NO_CHECK
        policy = CertRevTrustPolicy(RevocationCheckingPolicy(no_check, no_check))
    return ValidationContext(
        trust_roots=list(roots),
        other_certs=list(others),
        allow_fetching=fetch,
        revocation_mode=_MODE[spec.revocation],
        revinfo_policy=policy,
        moment=moment,
        fetcher_backend=backend,
        # Offline, the (empty) local revocation data is all there is.
        crls=None if fetch else [],
        ocsps=None if fetch else [],
    )


def ltv_material(
    check: SignerCheck,
    tsa_token: Any | None,
    spec: TrustSpec,
    *,
    run_check: Callable[..., SignerCheck] | None = None,
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]:
    """(certificates, OCSP responses, CRLs) a long-term signature carries: the
    signer's chain and revocation evidence and, given a time-stamp token, the
    TSA's (its certificate checked now, by ``run_check``: check_signer or a
    call of it in a worker), each item once."""
    from signkit.timestamps import tsa_certificates

    certs, ocsps, crls = check.chain, check.ocsp_responses, check.crls
    if tsa_token is not None:
        tsa_cert, tsa_others = tsa_certificates(tsa_token)
        if tsa_cert is not None:
            tsa = (run_check or check_signer)(
                tsa_cert, tsa_others + check.chain, spec, require_signing_usage=False
            )
            certs, ocsps, crls = certs + tsa.chain, ocsps + tsa.ocsp_responses, crls + tsa.crls
    return tuple(dict.fromkeys(certs)), tuple(dict.fromkeys(ocsps)), tuple(dict.fromkeys(crls))


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
    ``revocation='hard'`` and the status cannot be established.
    """
    from asn1crypto import x509
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator import errors as cverr

    now = now or datetime.now(UTC)
    cert = x509.Certificate.load(cert_der)
    from signkit.certs import load_certificate

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

    configured = [x509.Certificate.load(d) for d in load_certificates(spec.anchors)]
    others = [x509.Certificate.load(d) for d in chain_der]
    warnings: list[str] = []
    anchored: Literal["configured", "token", "none"] = "configured"
    roots = configured
    if not roots:
        roots = [c for c in others if c.self_signed == "maybe" or c.self_signed == "yes"]
        anchored = "token" if roots else "none"
        warnings.append(
            "no trust anchors configured (--trust): the chain ends at a root supplied by the "
            "token and was not checked against a trusted list"
            if roots
            else "no trust anchors configured (--trust) and no root on the token"
        )
    chain: tuple[bytes, ...] = (cert_der,)
    try:
        path = None
        if spec.revocation == "off" and roots:
            # Nothing to fetch when the chain is already at hand: skip the network stack.
            local = _validation_context(roots, others, replace(spec, offline=True), now, None)
            try:
                validator = CertificateValidator(
                    cert, intermediate_certs=others, validation_context=local
                )
                path = asyncio.run(_validate(validator, None))
                vc = local
            except cverr.PathBuildingError:
                path = None
        if path is None:
            backend = _fetcher_backend(spec)
            vc = _validation_context(roots, others, spec, now, backend)
            validator = CertificateValidator(cert, intermediate_certs=others, validation_context=vc)
            path = asyncio.run(_validate(validator, backend))
        chain = tuple(c.dump() for c in path.iter_certs(include_root=True))[::-1] or chain
        if chain[0] != cert_der:
            chain = tuple(reversed(chain))
    except cverr.RevokedError as exc:
        raise CertificateError(f"revoked ({exc})", subject=name) from None
    except (cverr.ExpiredError, cverr.NotYetValidError) as exc:
        raise CertificateError(str(exc), subject=name) from None
    except cverr.InsufficientRevinfoError as exc:
        raise (RevocationError if spec.offline else RevocationUnreachableError)(
            f"revocation status could not be established ({exc})",
            subject=name,
            hint="check network access to the OCSP/CRL URLs, or use --revocation soft",
        ) from None
    except (
        cverr.PathBuildingError,
        cverr.PathValidationError,
        cverr.InvalidCertificateError,
    ) as exc:
        if anchored == "configured":
            raise CertificateError(
                f"does not chain to a configured trust anchor ({exc})",
                subject=name,
                hint="add the issuing CA's root with --trust",
            ) from None
        warnings.append(f"chain not validated ({exc})")
        anchored = "none"
    ocsps = tuple(o.dump() for o in vc.ocsps)
    crls = tuple(c.dump() for c in vc.crls)
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


_BUNDLE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def bundle_dirs(environ: Mapping[str, str] = os.environ) -> tuple[Path, ...]:
    """Where named trust bundles live: the user's config, then the system's."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return (Path(config) / "signkit" / "trust", Path("/etc/signkit/trust"))


def resolve_anchor(value: str, environ: Mapping[str, str] = os.environ) -> Path:
    """A --trust value: a file or directory, or the name of an installed bundle
    (``vn-gov`` for the Government CA roots, ``vn-public`` for the National Root
    CA, or any name): ``<dir>/NAME/`` or ``<dir>/NAME.pem`` in ``bundle_dirs``."""
    path = Path(value)
    if path.exists() or not _BUNDLE_NAME.fullmatch(value):
        return path
    for base in bundle_dirs(environ):
        for candidate in (base / value, base / f"{value}.pem", base / f"{value}.crt"):
            if candidate.exists():
                return candidate
    where = " or ".join(str(b / value) for b in bundle_dirs(environ))
    raise ConfigError(
        "no such trust file, and no trust bundle of that name is installed",
        subject=value,
        hint=f"put the roots (PEM, DER or PKCS#7) in {where}",
    )


def require_anchors(spec: TrustSpec) -> None:
    """Fail early when a --trust path does not exist."""
    for path in spec.anchors:
        if not path.exists():
            raise ConfigError("trust anchor path does not exist", subject=str(path))
