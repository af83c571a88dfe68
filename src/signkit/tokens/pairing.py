"""Pairing a token's private keys with their certificates, and choosing one pair."""

from __future__ import annotations

from collections.abc import Sequence

from signkit.errors import (
    KeyAmbiguousError,
    KeyNotFoundError,
)
from signkit.tokens.model import (
    CertInfo,
    KeyInfo,
    KeyPair,
    KeySelector,
    normalise_fingerprint,
)


def pair_keys(
    private: Sequence[KeyInfo], certs: Sequence[CertInfo], public: Sequence[KeyInfo]
) -> list[KeyPair]:
    """Pair each private key with its certificate: by CKA_ID, then by public key."""
    by_id: dict[bytes, list[CertInfo]] = {}
    for cert in certs:
        if cert.id:
            by_id.setdefault(cert.id, []).append(cert)
    by_pub = {c.public_key_id: c for c in certs if c.public_key_id}
    pub_by_id = {k.id: k.public_key_id for k in public if k.id and k.public_key_id}
    pairs = []
    for key in private:
        same_id = [c for c in by_id.get(key.id, []) if not c.is_ca] if key.id else []
        pkid = key.public_key_id or pub_by_id.get(key.id)
        if len(same_id) == 1 and (pkid is None or same_id[0].public_key_id in (None, pkid)):
            pairs.append(KeyPair(key=key, cert=same_id[0], paired_by="id"))
        elif pkid is not None and pkid in by_pub:
            pairs.append(KeyPair(key=key, cert=by_pub[pkid], paired_by="public-key"))
        else:
            pairs.append(KeyPair(key=key, cert=None, paired_by="none"))
    return pairs


def select_pair(pairs: Sequence[KeyPair], selector: KeySelector, *, token: str) -> KeyPair:
    """The one key+certificate pair the selector names (or the only one)."""

    def matches(pair: KeyPair) -> bool:
        if selector.cert_fingerprint is not None and (
            pair.cert is None
            or pair.cert.sha256 != normalise_fingerprint(selector.cert_fingerprint)
        ):
            return False
        labels = {pair.key.label} | ({pair.cert.label} if pair.cert else set())
        ids = {pair.key.id} | ({pair.cert.id} if pair.cert else set())
        if selector.key_label is not None and selector.key_label not in labels:
            return False
        return not (selector.key_id is not None and selector.key_id not in ids)

    usable = [p for p in pairs if p.cert is not None]
    candidates = [p for p in usable if matches(p)]
    if len(candidates) == 1:
        return candidates[0]
    listing = "; ".join(p.describe() for p in (candidates or pairs)) or "none"
    if not candidates:
        orphans = [p for p in pairs if p.cert is None and matches(p)]
        extra = " (a matching key has no certificate on the token)" if orphans else ""
        raise KeyNotFoundError(
            f"no key with a certificate matches {selector.describe()}{extra}; "
            f"keys on the token: {listing}",
            subject=token,
            hint="`signkit token objects --login` lists keys and certificates",
        )
    raise KeyAmbiguousError(
        f"{len(candidates)} keys match {selector.describe()}: {listing}",
        subject=token,
        hint="choose one with --key-label, --key-id, --cert-fingerprint or --key pkcs11:...",
    )
