"""The audit seal key: an Ed25519 key that only ever signs audit seals.

It is deliberately not the person's signing key: sealing needs no PIN prompt,
and no log data ever sits under a legal signature. The private key lives in
the state directory (0600), created on first use; its public half is written
next to it (``.pub``) so a verifier can be given the public key alone.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from signkit.errors import ConfigError
from signkit.fsio import atomic_write, create_exclusive, temp_name, write_all

SEAL_DOMAIN = b"signkit-audit-seal-v1\n"


def canonical(record: Mapping[str, Any]) -> bytes:
    """The byte form of a record as written in the log (sorted keys, compact, UTF-8)."""
    return json.dumps(
        record, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    ).encode()


def seal_message(record: Mapping[str, Any]) -> bytes:
    """What a seal signature covers: the whole seal record but its ``sig``."""
    return SEAL_DOMAIN + canonical({k: v for k, v in record.items() if k != "sig"})


def default_seal_key_path() -> Path:
    """$XDG_STATE_HOME/signkit/audit-seal.key."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "signkit" / "audit-seal.key"


def fingerprint(raw_public: bytes) -> str:
    """SHA-256 of the raw Ed25519 public key, hex."""
    return hashlib.sha256(raw_public).hexdigest()


@dataclass(frozen=True)
class SealKey:
    """A loaded private seal key."""

    path: Path
    private: Any
    raw_public: bytes

    @property
    def fingerprint(self) -> str:
        """Identifies the key in seal records."""
        return fingerprint(self.raw_public)

    def sign(self, record: Mapping[str, Any]) -> str:
        """Base64 Ed25519 signature over ``seal_message(record)``."""
        return base64.b64encode(self.private.sign(seal_message(record))).decode("ascii")


def load_or_create_seal_key(path: Path) -> SealKey:
    """Load the seal key at ``path``, creating it (0600, and ``path.pub``) on first use."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data: bytes | None
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise ConfigError(
            f"cannot read the audit seal key ({exc.strerror})", subject=str(path)
        ) from None
    if data is None:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Written aside under a new name (never through anything planted
        # there), then linked into place: a run starting at the same moment
        # never reads a half-written key, and the first link wins.
        tmp = temp_name(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = create_exclusive(tmp, 0o600)
            try:
                write_all(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)
            except FileExistsError:
                return load_or_create_seal_key(path)  # another run's key is in place
        except OSError as exc:
            raise ConfigError(
                f"cannot create the audit seal key ({exc.strerror})", subject=str(path)
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pub_path = path.with_name(path.name + ".pub")
        try:
            atomic_write(pub_path, public_pem)
        except OSError as exc:
            raise ConfigError(
                f"cannot write the audit seal key's public half ({exc.strerror})",
                subject=str(pub_path),
            ) from None
        data = pem
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"not an unencrypted PEM private key ({exc})", subject=str(path)
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError("the audit seal key must be an Ed25519 key", subject=str(path))
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return SealKey(path=path, private=private, raw_public=raw)


def load_public_keys(paths: Iterable[Path]) -> dict[str, Any]:
    """Trusted seal public keys by fingerprint, from PEM public or private key files."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    keys: dict[str, Any] = {}
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the seal key ({exc.strerror})", subject=str(path)
            ) from None
        public: Any
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=None)
                public = private.public_key()
            else:
                public = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"not a PEM key ({exc})", subject=str(path)) from None
        if not isinstance(public, Ed25519PublicKey) or isinstance(public, Ed25519PrivateKey):
            raise ConfigError("not an Ed25519 key", subject=str(path))
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys[fingerprint(raw)] = public
    return keys


def check_seal(record: Mapping[str, Any], public: Any) -> bool:
    """Whether ``record['sig']`` is a valid seal signature by ``public``."""
    from cryptography.exceptions import InvalidSignature

    try:
        sig = base64.b64decode(str(record.get("sig", "")), validate=True)
        public.verify(sig, seal_message(record))
    except (InvalidSignature, ValueError):
        return False
    return True
