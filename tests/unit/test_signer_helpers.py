"""Host-side signing helpers, checked against independent encoders."""

from __future__ import annotations

import hashlib

import pytest
from asn1crypto import algos, core
from hypothesis import given
from hypothesis import strategies as st

from signkit.errors import MechanismError
from signkit.tokens.signer import (
    DIGEST_INFO_PREFIX,
    check_digest,
    digest_info,
    ecdsa_der_to_raw,
    ecdsa_raw_to_der,
)


@pytest.mark.parametrize("name", sorted(DIGEST_INFO_PREFIX))
def test_digest_info_matches_asn1crypto(name: str) -> None:
    value = hashlib.new(name, b"abc").digest()
    expected = algos.DigestInfo(
        {"digest_algorithm": {"algorithm": name, "parameters": core.Null()}, "digest": value}
    ).dump()
    assert digest_info(value, name) == expected


def test_digest_info_rejects_wrong_length() -> None:
    with pytest.raises(MechanismError):
        digest_info(b"\x00" * 20, "sha256")


@given(
    st.integers(min_value=1, max_value=2**256 - 1), st.integers(min_value=1, max_value=2**256 - 1)
)
def test_ecdsa_raw_der_round_trip(r: int, s: int) -> None:
    """signkit converts with cryptography; asn1crypto's DSASignature is the referee."""
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    der = ecdsa_raw_to_der(raw)
    assert der == algos.DSASignature.from_p1363(raw).dump()
    assert ecdsa_der_to_raw(der, 32) == raw


def test_ecdsa_raw_rejects_odd_length() -> None:
    with pytest.raises(MechanismError):
        ecdsa_raw_to_der(b"\x01\x02\x03")


@pytest.mark.parametrize("name", ["sha256", "SHA-384", "sha512", "sha3-256", "SHA3_512"])
def test_accepted_digests(name: str) -> None:
    assert check_digest(name, allow_sha1=False) in DIGEST_INFO_PREFIX


def test_sha384_is_not_mistaken_for_sha3() -> None:
    """Regression: 'sha384' starts with 'sha3' and was once rewritten to 'sha3_84'."""
    assert check_digest("sha384", allow_sha1=False) == "sha384"


def test_sha1_needs_the_unsafe_switch() -> None:
    with pytest.raises(MechanismError, match="SHA-1"):
        check_digest("sha1", allow_sha1=False)
    assert check_digest("SHA-1", allow_sha1=True) == "sha1"
    with pytest.raises(MechanismError, match="unsupported"):
        check_digest("md5", allow_sha1=True)
