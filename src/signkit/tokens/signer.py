"""The signing protocol every format uses, and the host-side helpers behind it.

Jobs and formats see only ``Signer``: a certificate, its chain, the key's
type and size, ``plan`` and ``sign``. The token layer hands out a
``TokenSigner`` (PKCS#11), which conforms to it; a PEM key or a remote
signer can slot in.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from signkit.errors import MechanismError
from signkit.tokens.model import DIGESTS, WEAK_DIGESTS, SignatureScheme

# DER prefix of DigestInfo for each digest (RFC 8017 §9.2 note 1; SHA-3 per
# the NIST OIDs 2.16.840.1.101.3.4.2.8-10). The digest bytes follow.
DIGEST_INFO_PREFIX: dict[str, bytes] = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
    "sha3_256": bytes.fromhex("3031300d060960864801650304020805000420"),
    "sha3_384": bytes.fromhex("3041300d060960864801650304020905000430"),
    "sha3_512": bytes.fromhex("3051300d060960864801650304020a05000440"),
}


# Separator-free spellings to canonical names ("SHA-384" and "sha3-384" differ
# only after the "sha3" prefix, so match whole names, never prefixes).
_DIGEST_ALIASES = {
    "sha1": "sha1",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha3256": "sha3_256",
    "sha3384": "sha3_384",
    "sha3512": "sha3_512",
}


class Signer(Protocol):
    """A key that signs, with its certificate (what ``open_signing_key`` hands out)."""

    @property
    def certificate_der(self) -> bytes:
        """The signer's certificate, DER."""

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        """Other certificates found next to the key (issuers, possibly unordered)."""

    @property
    def key_type(self) -> str:
        """'RSA' or 'EC'."""

    @property
    def key_size(self) -> int | None:
        """Key size in bits."""

    @property
    def pinpad_per_signature(self) -> bool:
        """Each signature asks for the PIN on a reader's pad (tell the user how many)."""

    def plan(self, digest_algorithm: str, scheme: SignatureScheme) -> tuple[int, bool]:
        """(mechanism, hash on the host?) for this key: raises MechanismError before any
        document is touched when the key cannot sign so."""

    def sign(self, data: bytes, *, digest_algorithm: str, scheme: SignatureScheme) -> bytes:
        """Sign ``data`` (hashing it with ``digest_algorithm``); ECDSA results are DER."""


def check_digest(digest_algorithm: str, *, allow_sha1: bool) -> str:
    """Normalise a digest name and refuse weak ones unless explicitly allowed."""
    compact = digest_algorithm.lower().replace("-", "").replace("_", "")
    name = _DIGEST_ALIASES.get(compact, compact)
    if name in WEAK_DIGESTS:
        if not allow_sha1:
            raise MechanismError(
                "SHA-1 signatures are refused",
                subject=digest_algorithm,
                hint="use SHA-256 or stronger; --insecure-allow-sha1 exists only for legacy tests",
            )
        return name
    if name not in DIGESTS:
        raise MechanismError(f"unsupported digest algorithm '{digest_algorithm}'")
    return name


def digest(data: bytes, digest_algorithm: str) -> bytes:
    """Hash ``data`` on the host."""
    return hashlib.new(digest_algorithm, data).digest()


def digest_info(digest_value: bytes, digest_algorithm: str) -> bytes:
    """DER DigestInfo for raw PKCS#1 v1.5 signing on tokens without hash mechanisms."""
    prefix = DIGEST_INFO_PREFIX[digest_algorithm]
    if len(digest_value) != prefix[-1]:
        raise MechanismError(f"digest length {len(digest_value)} does not fit {digest_algorithm}")
    return prefix + digest_value


def ecdsa_raw_to_der(raw: bytes) -> bytes:
    """PKCS#11 returns ECDSA as r||s; CMS and XML-DSig-with-DER need SEQUENCE{r, s}."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not raw or len(raw) % 2:
        raise MechanismError(f"malformed ECDSA signature from token ({len(raw)} bytes)")
    half = len(raw) // 2
    return encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


def ecdsa_der_to_raw(der: bytes, size_bytes: int) -> bytes:
    """SEQUENCE{r, s} back to fixed-width r||s (XML-DSig ECDSA uses this form)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    return r.to_bytes(size_bytes, "big") + s.to_bytes(size_bytes, "big")
