"""`cert check`: expiry, usage, chain and revocation of certificates, for IT and cron.

Sources: a token's certificates (read without login), certificate files
(PEM/DER/PKCS#7 bundles) and the signers of signed PDFs. Every fact says
where it came from (the certificate itself, the chain check, OCSP or CRL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signkit.errors import ExitCode, InputError
from signkit.pki.chain import no_anchors_note, validate_chain
from signkit.texts import shorten
from signkit.verify.policy import VerifyPolicy

# Worst first: what the one-line summary and the exit code follow.
STATES = (
    "revoked",
    "expired",
    "not-yet-valid",
    "untrusted",
    "no-signing-usage",
    "expiring",
    "unknown",
    "ok",
)
_CRITICAL = ("revoked", "expired", "not-yet-valid", "untrusted", "no-signing-usage")


@dataclass(kw_only=True)
class CertStatus:
    """What was established about one certificate."""

    source: str
    """Where the certificate came from (token and label, file, document)."""
    state: str
    """ok, expiring, expired, not-yet-valid, revoked, untrusted, unknown (revocation)."""
    subject: str
    """Subject (RFC 4514, Unicode kept)."""
    issuer: str
    """Issuer."""
    serial: str
    """Serial number (hex)."""
    sha256: str
    """Fingerprint."""
    not_before: str
    """Start of validity (UTC)."""
    not_after: str
    """End of validity (UTC)."""
    days_left: int
    """Days until not_after as people count them: calendar days in the local
    time zone (0 on the last day, negative once expired)."""
    severity: str = "ok"
    """ok, warning (expiring within --warn-days), critical (expired, revoked,
    untrusted, …, or expiring within --crit-days) or unknown."""
    key_usage: list[str]
    """keyUsage bits."""
    extended_key_usage: list[str]
    """extKeyUsage purposes."""
    algorithm: str
    """Public key algorithm (RSA, EC P-256, ...)."""
    key_size: int
    """Key size in bits."""
    chain: str
    """trusted, untrusted (with why) or not-checked."""
    chain_subjects: list[str] = field(default_factory=list)
    """The validated path, leaf first."""
    chain_detail: str | None = None
    """The path validator's message, when the chain was not validated."""
    revocation: str = "not-checked"
    """good, revoked, unknown, not-checked."""
    revocation_source: str | None = None
    """OCSP or CRL, embedded or fetched."""
    revoked_at: str | None = None
    """When revoked."""
    sources: dict[str, str] = field(default_factory=dict)
    """Which source each fact rests on."""
    notes: list[str] = field(default_factory=list)
    """What a person should know besides the state (no trust anchor configured)."""
    problems: list[str] = field(default_factory=list)
    """What is wrong, one phrase each."""

    def line(self) -> str:
        """One line for cron mail."""
        what = self.state.upper()
        detail = "; ".join(self.problems) if self.problems else days_text(self.days_left)
        until = _when(datetime.fromisoformat(self.not_after))
        where = f"serial {self.serial}, until {until}, {self.source}"
        return f"{what}: {self.subject} ({where}): {detail}"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)


def _name(name: Any) -> str:
    return str(name.rfc4514_string())


def days_until(end: datetime, now: datetime) -> int:
    """Days from ``now`` to ``end`` as people count them: the difference of
    their calendar dates in the local time zone. A certificate made valid for
    10 days has 10 days left on the day it is made, 1 the day before its
    last, 0 on its last day (it has not expired yet), -1 the day after."""
    return (end.astimezone().date() - now.astimezone().date()).days


def days_text(days: int) -> str:
    """``days`` left, in words."""
    if days == 0:
        return "expires today"
    return "1 day left" if days == 1 else f"{days} days left"


def _when(moment: datetime) -> str:
    """An exact time in the local zone (ISO 8601: reports and the JSON keep
    one form whatever the language)."""
    return moment.astimezone().isoformat(timespec="seconds")


def check_certificate(
    der: bytes,
    others: Sequence[bytes],
    policy: VerifyPolicy,
    *,
    source: str,
    warn_days: int,
    crit_days: int = 0,
    now: datetime | None = None,
) -> CertStatus:
    """Dates, usage, chain to the configured trust and revocation of one certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    now = now or policy.at or datetime.now(UTC)
    cert = x509.load_der_x509_certificate(der)
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        algorithm, size = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        algorithm, size = f"EC {key.curve.name}", key.curve.key_size
    else:
        algorithm, size = type(key).__name__, 0
    usage: list[str] = []
    eku: list[str] = []
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        for bit in (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        ):
            if getattr(ku, bit):
                usage.append("non_repudiation" if bit == "content_commitment" else bit)
    except x509.ExtensionNotFound:
        pass
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        eku = [oid._name if oid._name != "Unknown OID" else oid.dotted_string for oid in ext]
    except x509.ExtensionNotFound:
        pass
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    days_left = days_until(not_after, now)
    problems: list[str] = []
    state = "ok"
    if now < not_before:
        state = "not-yet-valid"
        start = _when(not_before)
        problems.append(f"not valid before {start}")
    elif now > not_after:
        state = "expired"
        end = _when(not_after)
        problems.append(f"expired on {end}")
    # A monitoring check says "unknown" for an answer it cannot use, rather
    # than accept it as verification's soft policy does.
    notes: list[str] = []
    if not policy.anchors:
        # the one rule without --trust, as `sign` applies it: the root that
        # came with the certificate closes the chain, and the person is told
        roots = tuple(d for d in others if _self_signed(d))
        policy = replace(policy, anchors=roots)
        notes.append(no_anchors_note(bool(roots), _supplier(source)))
    chain = validate_chain(der, others, policy, moment=now, soft_fallback=False)
    chain_text = "trusted" if chain.trusted else "untrusted"
    if notes and chain.trusted:
        chain_text = "not checked against a trusted list (no --trust)"
    if not chain.trusted and chain.revocation != "revoked" and state == "ok":
        if notes and chain.sub_indication.value != "TRY_LATER":
            # nothing configured to trust: not validated, as `sign` says it
            chain_text = "not validated (no --trust)"
            problems.append(f"chain not validated ({shorten(chain.detail or '', 160)})")
        elif chain.sub_indication.value == "TRY_LATER":
            state = "unknown"
            problems.append("revocation status could not be established")
        else:
            state = "untrusted"
            detail = shorten(chain.detail or "", 160)
            problems.append(f"chain: {chain.sub_indication.value} ({detail})")
    if not chain.trusted and not notes:
        chain_text = f"untrusted: {chain.sub_indication.value}"
    if chain.revocation == "revoked":
        state = "revoked"
        problems.insert(0, "revoked" + (f" since {chain.revoked_at}" if chain.revoked_at else ""))
    if state == "ok" and not ({"digital_signature", "non_repudiation"} & set(usage)) and usage:
        state = "no-signing-usage"
        problems.append(f"key usage ({', '.join(usage)}) does not allow signing")
    if state == "ok" and 0 <= days_left <= warn_days:
        state = "expiring"
        end = _when(not_after)
        if days_left == 0:
            problems.insert(0, f"expires today (at {end})")
        elif days_left == 1:
            problems.insert(0, f"expires in 1 day (on {end})")
        else:
            problems.insert(0, f"expires in {days_left} days (on {end})")
    if state == "ok" and chain.revocation == "unknown" and policy.revocation == "hard":
        state = "unknown"
    sources = {
        "validity": "certificate",
        "key_usage": "certificate",
        "chain": "configured trust anchors (--trust)" if policy.anchors else "no anchors",
        "revocation": chain.revocation_source
        or ("not checked (--revocation off)" if policy.revocation == "off" else "none"),
    }
    if state in _CRITICAL or (state == "expiring" and days_left <= crit_days):
        severity = "critical"
    elif state == "expiring":
        severity = "warning"
    else:
        severity = "unknown" if state == "unknown" else "ok"
    return CertStatus(
        source=source,
        state=state,
        severity=severity,
        subject=_name(cert.subject),
        issuer=_name(cert.issuer),
        serial=format(cert.serial_number, "X"),
        sha256=hashlib.sha256(der).hexdigest(),
        not_before=not_before.isoformat(),
        not_after=not_after.isoformat(),
        days_left=days_left,
        key_usage=usage,
        extended_key_usage=eku,
        algorithm=algorithm,
        key_size=size,
        chain=chain_text,
        chain_subjects=chain.chain_subjects,
        chain_detail=chain.detail,
        revocation=chain.revocation,
        revocation_source=chain.revocation_source,
        revoked_at=chain.revoked_at,
        sources=sources,
        problems=problems + chain.warnings,
        notes=notes,
    )


def _self_signed(der: bytes) -> bool:
    from asn1crypto import x509

    try:
        return x509.Certificate.load(der).self_signed in ("maybe", "yes")
    except (ValueError, TypeError):
        return False


def _supplier(source: str) -> str:
    """Who supplied a certificate's chain, in the words of the no-trust rule."""
    # the sources certificates_from_token and certificates_from_documents name
    if source.startswith("key ") and " on token '" in source:
        return "the token"
    if source.startswith("signature ") and " of " in source:
        return "the document"
    return "the file"


def worst_state(statuses: Sequence[CertStatus]) -> str:
    """The worst state of a run."""
    return min((s.state for s in statuses), key=STATES.index, default="ok")


def exit_code(statuses: Sequence[CertStatus]) -> int:
    """5 for expired/revoked/untrusted/not yet valid/not for signing, 7 expiring, else 0."""
    state = worst_state(statuses)
    if state in _CRITICAL:
        return int(ExitCode.TRUST)
    if state == "expiring":
        return int(ExitCode.EXPIRING)
    return int(ExitCode.OK)


_NAGIOS = {"ok": (0, "OK"), "warning": (1, "WARNING"), "critical": (2, "CRITICAL")}
_UNKNOWN = (3, "UNKNOWN")
_SEVERITY = ("critical", "unknown", "warning", "ok")


def worst_severity(statuses: Sequence[CertStatus]) -> str:
    """critical, unknown, warning or ok: the worst of a run."""
    return min((s.severity for s in statuses), key=_SEVERITY.index, default="ok")


def nagios(statuses: Sequence[CertStatus], *, warn_days: int, crit_days: int) -> tuple[int, str]:
    """(exit code 0-3, the one status line) by the monitoring-plugin convention;
    the perfdata carry the thresholds (as ranges: alert below them)."""
    if not statuses:
        return nagios_unknown("no certificate found")
    worst = worst_severity(statuses)
    code, word = _NAGIOS.get(worst, _UNKNOWN)
    soonest = min(statuses, key=lambda s: s.days_left)
    if worst == "ok":
        text = f"{len(statuses)} certificate(s) ok, next expiry in {soonest.days_left} days"
        text += f" (on {_when(datetime.fromisoformat(soonest.not_after))})"
    else:
        bad = [s for s in statuses if s.severity == worst]
        text = "; ".join(f"{s.subject}: {', '.join(s.problems[:1]) or s.state}" for s in bad)
    perf = f"certs={len(statuses)} min_days_left={soonest.days_left};{warn_days}:;{crit_days}:"
    return code, f"SIGNKIT CERT {word} - {_one_line(text)} |{perf}"


def nagios_unknown(reason: str) -> tuple[int, str]:
    """The status line when the check itself could not be done (exit 3)."""
    return _UNKNOWN[0], f"SIGNKIT CERT UNKNOWN - {_one_line(reason)}"


def _one_line(text: str) -> str:
    # A '|' starts the perfdata and a newline ends the status line.
    return " ".join(text.replace("|", "/").split())


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_METRICS = (
    ("signkit_cert_not_after_seconds", "End of validity of the certificate (Unix time)."),
    ("signkit_cert_days_left", "Days until the end of validity, as people count them."),
    (
        "signkit_cert_status",
        "0 ok, 1 warning (expiring), 2 critical (expired, revoked, untrusted, ...), 3 unknown; "
        "the state label says which.",
    ),
)
_STATUS_VALUE = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}


def prometheus(statuses: Sequence[CertStatus], *, success: bool, now: datetime) -> str:
    """The node_exporter textfile collector's format (text exposition 0.0.4):
    per certificate its end of validity, days left and status, and whether
    the check itself ran (a failed check keeps no stale certificate values)."""
    lines: list[str] = []
    series: dict[str, list[str]] = {name: [] for name, _ in _METRICS}
    for s in statuses:
        labels = ",".join(
            f'{key}="{_label(value)}"'
            for key, value in (
                ("source", s.source),
                ("subject", s.subject),
                ("serial", s.serial),
                ("sha256", s.sha256),
            )
        )
        not_after = datetime.fromisoformat(s.not_after).timestamp()
        series["signkit_cert_not_after_seconds"].append(f"{{{labels}}} {not_after:.0f}")
        series["signkit_cert_days_left"].append(f"{{{labels}}} {s.days_left}")
        series["signkit_cert_status"].append(
            f'{{{labels},state="{s.state}"}} {_STATUS_VALUE[s.severity]}'
        )
    for name, help_text in _METRICS:
        if series[name]:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
            lines += [f"{name}{sample}" for sample in series[name]]
    lines += [
        "# HELP signkit_cert_check_success 1 when the check ran, 0 when it failed "
        "(token absent, file unreadable, ...).",
        "# TYPE signkit_cert_check_success gauge",
        f"signkit_cert_check_success {int(success)}",
        "# HELP signkit_cert_check_timestamp_seconds When the check ran (Unix time).",
        "# TYPE signkit_cert_check_timestamp_seconds gauge",
        f"signkit_cert_check_timestamp_seconds {now.timestamp():.0f}",
    ]
    return "\n".join(lines) + "\n"


def certificates_from_files(paths: Sequence[Path]) -> list[tuple[str, bytes, list[bytes]]]:
    """(source, leaf, the other certificates of the same file) for every certificate."""
    from signkit.pki.anchors import load_certificates

    found = []
    for path in paths:
        if not path.exists():
            raise InputError("no such file", subject=str(path))
        certs = load_certificates([path])
        for der in certs:
            found.append((str(path), der, [c for c in certs if c != der]))
    return found


def certificates_from_documents(paths: Sequence[Path]) -> list[tuple[str, bytes, list[bytes]]]:
    """The signer certificate (and embedded chain) of each signature of signed PDFs."""
    import io

    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    found = []
    for path in paths:
        try:
            reader = PdfFileReader(io.BytesIO(path.read_bytes()), strict=False)
            sigs = list(reader.embedded_regular_signatures)
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
        except PdfError as exc:
            raise InputError(f"not a readable PDF ({exc})", subject=str(path)) from None
        if not sigs:
            raise InputError("the document carries no signature", subject=str(path))
        for n, sig in enumerate(sigs, start=1):
            leaf = sig.signer_cert.dump()
            others = [c.dump() for c in sig.other_embedded_certs]
            found.append((f"signature {n} of {path}", leaf, others))
    return found


def certificates_from_token(spec: Any) -> list[tuple[str, bytes, list[bytes]]]:
    """End-entity certificates of the token (no login); its CA certificates serve as chain."""
    from signkit.errors import KeyNotFoundError
    from signkit.tokens.access import resolve_module
    from signkit.tokens.pkcs11 import Pkcs11Module

    path = resolve_module(spec)
    selector = spec.selector
    with Pkcs11Module.load(path) as module, module.open_token(selector) as session:
        certs = session.certificates()
        name = session.name
    cas = [c.der for c in certs if c.is_ca]
    chosen = [c for c in certs if not c.is_ca]
    if selector.key_label is not None:
        chosen = [c for c in chosen if c.label == selector.key_label]
    if selector.key_id is not None:
        chosen = [c for c in chosen if c.id == selector.key_id]
    if selector.cert_fingerprint is not None:
        want = selector.cert_fingerprint.replace(":", "").lower()
        chosen = [c for c in chosen if c.sha256 == want]
    if not chosen:
        raise KeyNotFoundError("no certificate matches the selection", subject=name)
    # the fixed words first: a catalogue template that starts and ends with a
    # value would match (and mangle) any sentence with ", key " inside
    return [(f"key {c.label!r} on {name}", c.der, cas) for c in chosen]
