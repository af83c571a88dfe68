"""Plain data about modules, tokens, keys and certificates (no pkcs11 import)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

SignatureScheme = Literal["pkcs1v15", "pss", "ecdsa"]
DIGESTS: tuple[str, ...] = ("sha256", "sha384", "sha512", "sha3_256", "sha3_384", "sha3_512")
WEAK_DIGESTS: tuple[str, ...] = ("sha1",)


def normalise_fingerprint(value: str) -> str:
    """Lower-case hex without ':' or spaces."""
    return value.replace(":", "").replace(" ", "").strip().lower()


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
    user_pin_initialized: bool = True
    """CKF_USER_PIN_INITIALIZED: false on a token fresh from C_InitToken."""

    def describe(self) -> list[str]:
        """Short names of the flags that matter, for humans."""
        names = [
            name.replace("_", " ")
            for name, value in asdict(self).items()
            if value and name != "user_pin_initialized"
        ]
        if not self.initialized:
            names.append("not initialised")
        elif not self.user_pin_initialized:
            names.append("user PIN not initialised")
        return names

    @property
    def usable(self) -> bool:
        """Whether a user could log in and sign: initialised, with a user PIN set."""
        return self.initialized and (self.user_pin_initialized or not self.login_required)


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
    pin_min: int | None = None
    """ulMinPinLen: the shortest PIN the token takes (bytes); None if it does not say."""
    pin_max: int | None = None
    """ulMaxPinLen: the longest PIN the token takes (bytes); None if it does not say."""
    slot_manufacturer: str = ""
    """The slot's manufacturer id (the reader's maker)."""

    def display_name(self) -> str:
        """A name a person recognises: label and serial."""
        if not self.label and not self.flags.initialized:
            # SoftHSM's spare slot, a blank card: no label or serial to show
            return f"uninitialised token (slot {self.slot_id})"
        return f"token '{self.label}' (serial {self.serial}, slot {self.slot_id})"

    def identity(self) -> dict[str, str]:
        """What tells this token from another, however it is reached (the PIN guard).

        Not the serial alone: every openCryptoki soft token says "123", so the
        manufacturer, model and label come with it. Not the module path or
        the slot either: the same token reached through another module path,
        or plugged into another port, must still meet its guard. Two tokens
        alike in all four are treated as one, which blocks too much rather
        than too little.
        """
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "serial": self.serial,
            "label": self.label,
        }

    def identity_key(self) -> str:
        """A file-name-safe digest of ``identity()``."""
        text = "\0".join(self.identity().values())
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def audit_record(self) -> dict[str, Any]:
        """Everything that names this token in an audit record: its identity, and
        where it was found (module, slot), so tokens with one serial stay apart."""
        return {
            **self.identity(),
            "module": os.path.realpath(self.module),
            "slot": self.slot_id,
            "slot_description": self.slot_description,
        }

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
class PublicObjects:
    """What a token shows before login: whether, and with which key, it could sign."""

    certificates: tuple[tuple[str, str, str], ...] = ()
    """(label, CKA_ID hex, SHA-256 fingerprint) of each certificate."""
    public_keys: tuple[tuple[str, str], ...] = ()
    """(label, CKA_ID hex) of each public key."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "certificates": [list(c) for c in self.certificates],
            "public_keys": [list(k) for k in self.public_keys],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PublicObjects:
        """The inverse of ``to_json``."""
        return cls(
            certificates=tuple(
                (str(a), str(b), str(c)) for a, b, c in data.get("certificates", [])
            ),
            public_keys=tuple((str(a), str(b)) for a, b in data.get("public_keys", [])),
        )


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
    token_manufacturer: str | None = None
    """Token manufacturer id, exact match (RFC 7512 ``manufacturer``)."""
    token_model: str | None = None
    """Token model, exact match (RFC 7512 ``model``)."""
    slot_description: str | None = None
    """Slot description, exact match (RFC 7512 ``slot-description``)."""
    slot_manufacturer: str | None = None
    """Slot manufacturer id, exact match (RFC 7512 ``slot-manufacturer``)."""
    library_manufacturer: str | None = None
    """The module's manufacturer id (RFC 7512 ``library-manufacturer``)."""
    library_description: str | None = None
    """The module's description (RFC 7512 ``library-description``)."""
    library_version: str | None = None
    """The module's version, "M" or "M.N" (RFC 7512 ``library-version``)."""

    def has_key_criteria(self) -> bool:
        """True when anything narrows the key."""
        return any(v is not None for v in (self.key_label, self.key_id, self.cert_fingerprint))

    def matches_token(self, token: TokenInfo) -> bool:
        """Whether ``token`` fits the token and slot criteria."""
        wanted = (
            (self.token_label, token.label),
            (self.token_serial, token.serial),
            (self.token_manufacturer, token.manufacturer),
            (self.token_model, token.model),
            (self.slot_description, token.slot_description),
            (self.slot_manufacturer, token.slot_manufacturer),
        )
        return all(want is None or want == have for want, have in wanted) and (
            self.slot is None or token.slot_id == self.slot
        )

    def library_mismatch(self, library: dict[str, str]) -> str | None:
        """Why a module with ``library`` (see Pkcs11Module.library_info) does not fit the
        library criteria, or None when it does."""
        checks = (
            ("library-manufacturer", self.library_manufacturer, library.get("manufacturer")),
            ("library-description", self.library_description, library.get("description")),
        )
        for name, want, have in checks:
            if want is not None and want != have:
                return f"the module's {name} is {have!r}, not {want!r}"
        if self.library_version is not None:
            have = library.get("library_version", "")
            want = (
                self.library_version if "." in self.library_version else f"{self.library_version}.0"
            )
            if _version(want) != _version(have):
                return f"the module's library-version is {have!r}, not {self.library_version!r}"
        return None

    def matches_public(self, objects: PublicObjects) -> bool:
        """Whether a token's public objects could hold the key named (before login)."""

        def label_id(label: str, id_hex: str) -> bool:
            if self.key_label is not None and label != self.key_label:
                return False
            return self.key_id is None or id_hex == self.key_id.hex()

        wanted = None
        if self.cert_fingerprint is not None:
            wanted = normalise_fingerprint(self.cert_fingerprint)
        for label, id_hex, sha256 in objects.certificates:
            if (wanted is None or sha256 == wanted) and label_id(label, id_hex):
                return True
        if wanted is not None:
            return False
        return any(label_id(label, id_hex) for label, id_hex in objects.public_keys)

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
        uri_attrs = (
            ("manufacturer", self.token_manufacturer),
            ("model", self.token_model),
            ("slot-description", self.slot_description),
            ("slot-manufacturer", self.slot_manufacturer),
            ("library-manufacturer", self.library_manufacturer),
            ("library-description", self.library_description),
            ("library-version", self.library_version),
        )
        for name, value in uri_attrs:
            if value is not None:
                parts.append(f"{name}={value!r}")
        return " ".join(parts) or "(no selection)"


def _version(text: str) -> tuple[int, ...] | str:
    """'3.8' -> (3, 8); what does not parse stays text and matches only itself."""
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return text
