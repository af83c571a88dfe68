"""Plain data about modules, tokens, keys and certificates (no pkcs11 import)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

SignatureScheme = Literal["pkcs1v15", "pss", "ecdsa"]
DIGESTS: tuple[str, ...] = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")
WEAK_DIGESTS: tuple[str, ...] = ("sha1",)


@dataclass(frozen=True, kw_only=True)
class TokenFlags:
    """The token flags that matter to a person deciding whether to log in."""

    login_required: bool
    protected_auth_path: bool
    user_pin_count_low: bool
    user_pin_final_try: bool
    user_pin_locked: bool
    user_pin_to_be_changed: bool
    initialized: bool
    write_protected: bool

    def describe(self) -> list[str]:
        """Short names of the flags that are set, for humans."""
        return [name.replace("_", " ") for name, value in asdict(self).items() if value]


@dataclass(frozen=True, kw_only=True)
class TokenInfo:
    """One token in one slot of one module."""

    module: str
    """Path of the PKCS#11 module that exposes the token."""
    slot_id: int
    """PKCS#11 slot id (stable while the reader stays plugged in)."""
    slot_description: str
    """The slot's description (usually the reader's name)."""
    label: str
    """Token label."""
    manufacturer: str
    """Token manufacturer id."""
    model: str
    """Token model."""
    serial: str
    """Token serial number."""
    flags: TokenFlags
    """Login and PIN state flags."""

    def display_name(self) -> str:
        """A name a person recognises: label and serial."""
        return f"token '{self.label}' (serial {self.serial}, slot {self.slot_id})"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["flags"] = asdict(self.flags)
        return data


@dataclass(frozen=True, kw_only=True)
class CertInfo:
    """A certificate object found on a token."""

    label: str
    """CKA_LABEL (may be empty or non-ASCII)."""
    id: bytes
    """CKA_ID."""
    subject: str
    """Subject in RFC 4514-like human form."""
    issuer: str
    """Issuer in human form."""
    serial: int
    """Certificate serial number."""
    not_before: datetime
    """Start of validity (UTC)."""
    not_after: datetime
    """End of validity (UTC)."""
    sha256: str
    """SHA-256 fingerprint, lower-case hex without separators."""
    key_usage: tuple[str, ...]
    """keyUsage bits that are set."""
    extended_key_usage: tuple[str, ...]
    """extKeyUsage purposes."""
    is_ca: bool
    """basicConstraints cA."""
    public_key_id: str | None
    """Hash of the raw public key (RSA modulus or EC point), to pair with keys."""
    der: bytes = field(repr=False)
    """The certificate, DER."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (without the DER blobs)."""
        return {
            "label": self.label,
            "id": self.id.hex(),
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": format(self.serial, "x"),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "sha256": self.sha256,
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "is_ca": self.is_ca,
        }


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    """A private or public key object found on a token."""

    label: str
    """CKA_LABEL (may be empty)."""
    id: bytes
    """CKA_ID."""
    key_type: str
    """'RSA', 'EC', 'EdDSA' or the raw CKK name."""
    key_size: int | None
    """Modulus bits for RSA, field bits for EC; None if the token hides it."""
    private: bool
    """True for a private key, False for a public key object."""
    always_authenticate: bool = False
    """CKA_ALWAYS_AUTHENTICATE: each signature needs a context-specific login."""
    public_key_id: str | None = None
    """Hash of the raw public key when the token shows it (see certs.public_key_id)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "label": self.label,
            "id": self.id.hex(),
            "class": "private-key" if self.private else "public-key",
            "key_type": self.key_type,
            "key_size": self.key_size,
            "always_authenticate": self.always_authenticate,
        }


@dataclass(frozen=True, kw_only=True)
class KeyPair:
    """A private key and the certificate that belongs to it."""

    key: KeyInfo
    """The private key."""
    cert: CertInfo | None
    """Its certificate, if one was found."""
    paired_by: Literal["id", "public-key", "none"]
    """How the certificate was matched to the key."""

    def describe(self) -> str:
        """One line for candidate lists in error messages."""
        key = f"key label={self.key.label!r} id={self.key.id.hex() or '-'}"
        if self.cert is None:
            return f"{key} (no certificate)"
        return f"{key} cert={self.cert.subject!r} sha256={self.cert.sha256[:16]}…"


@dataclass(frozen=True, kw_only=True)
class KeySelector:
    """How the user named the token and key (every field optional)."""

    token_label: str | None = None
    """Token label, exact match."""
    token_serial: str | None = None
    """Token serial, exact match."""
    slot: int | None = None
    """Slot id."""
    key_label: str | None = None
    """Label of the private key or of its certificate."""
    key_id: bytes | None = None
    """CKA_ID of the key or its certificate."""
    cert_fingerprint: str | None = None
    """SHA-256 fingerprint of the certificate (hex, separators ignored)."""

    def has_token_criteria(self) -> bool:
        """True when anything narrows the token."""
        return any(v is not None for v in (self.token_label, self.token_serial, self.slot))

    def has_key_criteria(self) -> bool:
        """True when anything narrows the key."""
        return any(v is not None for v in (self.key_label, self.key_id, self.cert_fingerprint))

    def describe(self) -> str:
        """The selection as the user would have typed it."""
        parts = []
        if self.token_label is not None:
            parts.append(f"--token-label {self.token_label!r}")
        if self.token_serial is not None:
            parts.append(f"--token-serial {self.token_serial}")
        if self.slot is not None:
            parts.append(f"--slot {self.slot}")
        if self.key_label is not None:
            parts.append(f"--key-label {self.key_label!r}")
        if self.key_id is not None:
            parts.append(f"--key-id {self.key_id.hex()}")
        if self.cert_fingerprint is not None:
            parts.append(f"--cert-fingerprint {self.cert_fingerprint}")
        return " ".join(parts) or "(no selection)"
