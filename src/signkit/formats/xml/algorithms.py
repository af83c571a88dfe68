"""XMLDSig algorithm identifiers, digests and signature values.

The URIs signkit writes (SHA-2, RSA PKCS#1 v1.5, RSA-PSS, ECDSA) and the
wider set it reads from other producers: SHA-1 and SHA-224, SHA-3, DSA,
EdDSA (RFC 9231) and RSA-PSS with explicit parameters. Whether a weak
algorithm is acceptable is the verifier's policy, not decided here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

DS = "http://www.w3.org/2000/09/xmldsig#"
DS11 = "http://www.w3.org/2009/xmldsig11#"
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_MORE07 = "http://www.w3.org/2007/05/xmldsig-more#"
_MORE21 = "http://www.w3.org/2021/04/xmldsig-more#"
_ENC = "http://www.w3.org/2001/04/xmlenc#"

DIGESTS: dict[str, str] = {
    DS + "sha1": "sha1",
    _MORE + "sha224": "sha224",
    _ENC + "sha256": "sha256",
    _MORE + "sha384": "sha384",
    _ENC + "sha512": "sha512",
    _MORE07 + "sha3-224": "sha3_224",
    _MORE07 + "sha3-256": "sha3_256",
    _MORE07 + "sha3-384": "sha3_384",
    _MORE07 + "sha3-512": "sha3_512",
}
"""Digest URI -> hashlib name."""
DIGEST_URI = {name: uri for uri, name in DIGESTS.items() if name in ("sha256", "sha384", "sha512")}
"""The digests signkit signs with."""
# Digests some producers write as bare names (seen in XAdES 1.2.2 time-stamp data).
_DIGEST_ALIASES = {"SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


@dataclass(frozen=True)
class SignatureAlgorithm:
    """What a SignatureMethod URI means."""

    key: str
    """rsa, rsa-pss, ecdsa, dsa, ed25519, ed448 or hmac."""
    digest: str
    """hashlib name of the message digest ('' for EdDSA, which hashes by itself)."""


def _table() -> dict[str, SignatureAlgorithm]:
    table: dict[str, SignatureAlgorithm] = {
        DS + "rsa-sha1": SignatureAlgorithm("rsa", "sha1"),
        DS + "dsa-sha1": SignatureAlgorithm("dsa", "sha1"),
        DS11 + "dsa-sha256": SignatureAlgorithm("dsa", "sha256"),
        DS + "hmac-sha1": SignatureAlgorithm("hmac", "sha1"),
        _MORE21 + "eddsa-ed25519": SignatureAlgorithm("ed25519", ""),
        _MORE21 + "eddsa-ed448": SignatureAlgorithm("ed448", ""),
    }
    for name in ("sha224", "sha256", "sha384", "sha512"):
        table[_MORE + f"rsa-{name}"] = SignatureAlgorithm("rsa", name)
        table[_MORE + f"ecdsa-{name}"] = SignatureAlgorithm("ecdsa", name)
        table[_MORE + f"hmac-{name}"] = SignatureAlgorithm("hmac", name)
    table[_MORE + "ecdsa-sha1"] = SignatureAlgorithm("ecdsa", "sha1")
    for name in ("sha1", "sha224", "sha256", "sha384", "sha512"):
        table[_MORE07 + f"{name}-rsa-MGF1"] = SignatureAlgorithm("rsa-pss", name)
    for bits in ("224", "256", "384", "512"):
        table[_MORE07 + f"sha3-{bits}-rsa-MGF1"] = SignatureAlgorithm("rsa-pss", f"sha3_{bits}")
        table[_MORE07 + f"ecdsa-sha3-{bits}"] = SignatureAlgorithm("ecdsa", f"sha3_{bits}")
    table[_MORE07 + "rsa-pss"] = SignatureAlgorithm("rsa-pss", "")  # RSAPSSParams say which
    return table


SIGNATURES = _table()
"""SignatureMethod URI -> algorithm."""
SIGNATURE_URI: dict[tuple[str, str], str] = {
    ("pkcs1v15", name): _MORE + f"rsa-{name}" for name in ("sha256", "sha384", "sha512")
}
# RFC 6931: RSA-PSS with MGF1 over the same hash and a salt as long as the
# hash needs no RSAPSSParams element.
SIGNATURE_URI.update(
    {("pss", n): _MORE07 + f"{n}-rsa-MGF1" for n in ("sha256", "sha384", "sha512")}
)
SIGNATURE_URI.update({("ecdsa", n): _MORE + f"ecdsa-{n}" for n in ("sha256", "sha384", "sha512")})
"""(scheme, digest) -> the SignatureMethod URI signkit writes."""


def digest_name(uri: str | None) -> str | None:
    """The hashlib name of a DigestMethod URI, or None when unknown."""
    if uri is None:
        return None
    return DIGESTS.get(uri) or _DIGEST_ALIASES.get(uri)


def digest(name: str, data: bytes) -> bytes:
    """``data`` hashed with the hashlib algorithm ``name``."""
    return hashlib.new(name, data).digest()


def _hash(name: str) -> HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    table: dict[str, Callable[[], HashAlgorithm]] = {
        "sha1": hashes.SHA1,
        "sha224": hashes.SHA224,
        "sha256": hashes.SHA256,
        "sha384": hashes.SHA384,
        "sha512": hashes.SHA512,
        "sha3_224": hashes.SHA3_224,
        "sha3_256": hashes.SHA3_256,
        "sha3_384": hashes.SHA3_384,
        "sha3_512": hashes.SHA3_512,
    }
    return table[name]()


@dataclass(frozen=True)
class PssParameters:
    """RSA-PSS parameters of an ``rsa-pss`` SignatureMethod (RFC 6931 §2.3.10)."""

    digest: str
    """Message digest (hashlib name)."""
    mgf_digest: str
    """MGF1's digest."""
    salt_length: int
    """Salt length in bytes."""


def verify_value(
    key: PublicKeyTypes,
    algorithm: SignatureAlgorithm,
    value: bytes,
    data: bytes,
    pss: PssParameters | None = None,
) -> bool:
    """Whether ``value`` (as XMLDSig writes it: r||s for (EC)DSA) signs ``data`` with
    ``key`` under ``algorithm``. False for a mismatch or a key of another type."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

    try:
        if algorithm.key == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(value, data)
        elif algorithm.key == "ed448" and isinstance(key, ed448.Ed448PublicKey):
            key.verify(value, data)
        elif algorithm.key == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(_raw_to_der(value), data, ec.ECDSA(_hash(algorithm.digest)))
        elif algorithm.key == "dsa" and isinstance(key, dsa.DSAPublicKey):
            key.verify(_raw_to_der(value), data, _hash(algorithm.digest))
        elif algorithm.key == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), _hash(algorithm.digest))
        elif algorithm.key == "rsa-pss" and isinstance(key, rsa.RSAPublicKey):
            params = pss or PssParameters(
                algorithm.digest, algorithm.digest, hashlib.new(algorithm.digest).digest_size
            )
            key.verify(
                value,
                data,
                padding.PSS(padding.MGF1(_hash(params.mgf_digest)), params.salt_length),
                _hash(params.digest),
            )
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _raw_to_der(value: bytes) -> bytes:
    """XMLDSig's r||s (each half the value; leading zero padding allowed) as DER."""
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if not value or len(value) % 2:
        raise ValueError("an (EC)DSA value of odd length")
    half = len(value) // 2
    return encode_dss_signature(
        int.from_bytes(value[:half], "big"), int.from_bytes(value[half:], "big")
    )
