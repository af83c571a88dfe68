"""``TokenSigner``: the Signer protocol over a key on a PKCS#11 token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from signkit.tokens.p11errors import wrap_pkcs11_error
from signkit.tokens.rawcalls import CKR_USER_TYPE_INVALID

if TYPE_CHECKING:
    from signkit.tokens.pkcs11 import TokenSession

import hashlib
from collections.abc import Callable
from typing import Any

import pkcs11.exceptions as p11e
from pkcs11 import MGF, Mechanism

from signkit.errors import (
    MechanismError,
)
from signkit.tokens.ckr import ckr_of, describe_ckr
from signkit.tokens.model import (
    KeyInfo,
    SignatureScheme,
)
from signkit.tokens.pin import Pin
from signkit.tokens.signer import check_digest, digest, digest_info, ecdsa_raw_to_der

# Hash-on-token mechanisms per (scheme, digest).
_HASH_MECHS: dict[tuple[str, str], Mechanism] = {
    ("pkcs1v15", "sha1"): Mechanism.SHA1_RSA_PKCS,
    ("pkcs1v15", "sha256"): Mechanism.SHA256_RSA_PKCS,
    ("pkcs1v15", "sha384"): Mechanism.SHA384_RSA_PKCS,
    ("pkcs1v15", "sha512"): Mechanism.SHA512_RSA_PKCS,
    ("pkcs1v15", "sha3_256"): Mechanism.SHA3_256_RSA_PKCS,
    ("pkcs1v15", "sha3_384"): Mechanism.SHA3_384_RSA_PKCS,
    ("pkcs1v15", "sha3_512"): Mechanism.SHA3_512_RSA_PKCS,
    ("pss", "sha256"): Mechanism.SHA256_RSA_PKCS_PSS,
    ("pss", "sha384"): Mechanism.SHA384_RSA_PKCS_PSS,
    ("pss", "sha512"): Mechanism.SHA512_RSA_PKCS_PSS,
    ("ecdsa", "sha1"): Mechanism.ECDSA_SHA1,
    ("ecdsa", "sha256"): Mechanism.ECDSA_SHA256,
    ("ecdsa", "sha384"): Mechanism.ECDSA_SHA384,
    ("ecdsa", "sha512"): Mechanism.ECDSA_SHA512,
}


_RAW_MECHS: dict[str, Mechanism] = {
    "pkcs1v15": Mechanism.RSA_PKCS,
    "pss": Mechanism.RSA_PKCS_PSS,
    "ecdsa": Mechanism.ECDSA,
}


_PSS_PARAMS: dict[str, tuple[Mechanism, MGF, int]] = {
    "sha256": (Mechanism.SHA256, MGF.SHA256, 32),
    "sha384": (Mechanism.SHA384, MGF.SHA384, 48),
    "sha512": (Mechanism.SHA512, MGF.SHA512, 64),
}


@dataclass(kw_only=True)
class TokenSigner:
    """Signs with one private key on a logged-in token session (implements Signer)."""

    session: TokenSession
    key: Any
    info: KeyInfo
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    context_pin: Pin | None
    allow_sha1: bool
    pinpad_per_signature: bool = False
    """Each signature asks for the PIN on the reader's pad (always-authenticate key)."""
    warn: Callable[[str], None] | None = None
    """Hears once when the token refuses the per-signature login."""
    context_login_refused: bool = False
    """The token answered the per-signature login with CKR_USER_TYPE_INVALID."""

    @property
    def key_type(self) -> str:
        """'RSA' or 'EC'."""
        return self.info.key_type

    @property
    def key_size(self) -> int | None:
        """Key size in bits."""
        return self.info.key_size

    def default_scheme(self) -> SignatureScheme:
        """PKCS#1 v1.5 for RSA (what real tokens and documents use), ECDSA for EC."""
        return "ecdsa" if self.info.key_type == "EC" else "pkcs1v15"

    def plan(self, digest_algorithm: str, scheme: SignatureScheme) -> tuple[int, bool]:
        """(mechanism, hash on host?) for this token; raises when it cannot sign so."""
        algo = check_digest(digest_algorithm, allow_sha1=self.allow_sha1)
        if (scheme == "ecdsa") != (self.info.key_type == "EC"):
            raise MechanismError(
                f"a {self.info.key_type} key cannot make {scheme} signatures",
                subject=self.session.name,
            )
        offered = self.session.mechanisms()
        combined = _HASH_MECHS.get((scheme, algo))
        if combined is not None and combined in offered:
            return combined, False
        raw = _RAW_MECHS[scheme]
        if raw in offered and (scheme != "pss" or algo in _PSS_PARAMS):
            return raw, True
        raise MechanismError(
            f"the token offers no mechanism for {scheme} with {algo}",
            subject=self.session.name,
            hint="`signkit token info` lists the token's mechanisms",
        )

    def _refused(self) -> None:
        # The token keeps CKA_ALWAYS_AUTHENTICATE but will not take the login
        # that attribute asks for; CKR_USER_TYPE_INVALID is checked before the
        # PIN, so no try was used. It signs on the logged-in session instead.
        if not self.context_login_refused and self.warn is not None:
            self.warn(
                f"{self.session.name}: the key asks for a login before each signature "
                "(CKA_ALWAYS_AUTHENTICATE) but the token refuses that login "
                f"({describe_ckr(CKR_USER_TYPE_INVALID)}; no PIN try used): "
                "signing on the logged-in session, as the token allows"
            )
        self.context_login_refused = True

    def sign(self, data: bytes, *, digest_algorithm: str, scheme: SignatureScheme) -> bytes:
        """Sign ``data``; hash on the token when it can, else on the host."""
        algo = check_digest(digest_algorithm, allow_sha1=self.allow_sha1)
        mech, host_hash = self.plan(algo, scheme)
        param: Any = _PSS_PARAMS[algo] if scheme == "pss" else None
        payload = data
        if host_hash:
            value = digest(data, algo)
            payload = digest_info(value, algo) if scheme == "pkcs1v15" else value
        if self.pinpad_per_signature and not self.context_login_refused:
            if param is not None:
                raise MechanismError(
                    "RSA-PSS with a PIN-pad login per signature is not supported",
                    subject=self.session.name,
                )
            sig, refused = self.session.raw_context_sign(self.key, int(mech), payload, None)
            if refused:
                self._refused()
            return ecdsa_raw_to_der(sig) if scheme == "ecdsa" else sig
        pin = None
        if self.context_pin is not None and not self.context_login_refused:
            pin = self.context_pin.reveal()
        try:
            sig = bytes(self.key.sign(payload, mechanism=mech, mechanism_param=param, pin=pin))
        except p11e.PKCS11Error as exc:
            if pin is None or ckr_of(exc) != CKR_USER_TYPE_INVALID:
                raise wrap_pkcs11_error(exc, subject=self.session.name, action="signing") from exc
            self._refused()
            try:
                sig = bytes(self.key.sign(payload, mechanism=mech, mechanism_param=param))
            except p11e.PKCS11Error as again:
                raise wrap_pkcs11_error(
                    again, subject=self.session.name, action="signing"
                ) from again
        return ecdsa_raw_to_der(sig) if scheme == "ecdsa" else sig

    def fingerprint(self) -> str:
        """SHA-256 of the signer certificate."""
        return hashlib.sha256(self.certificate_der).hexdigest()
