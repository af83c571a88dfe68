"""The streaming CMS reader: hostile and truncated input fails as malformed
input (never another error), BER and DER read alike, a rewrite keeps every
stored byte, and the renewal window arithmetic."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from asn1crypto import cms
from hypothesis import given, settings
from hypothesis import strategies as st

from signkit.errors import InputFormatError, UsageError
from signkit.formats.cms.der import SignedDataParts, read_signed_data


def _signed_data(content: bytes | None) -> bytes:
    encap = {"content_type": "data"}
    if content is not None:
        encap["content"] = content
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": encap,
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": {"subject_key_identifier": b"k" * 20},
                    "digest_algorithm": {"algorithm": "sha256"},
                    "signature_algorithm": {"algorithm": "sha256_rsa"},
                    "signature": b"s" * 256,
                }
            ],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def _read(data: bytes) -> SignedDataParts:
    return read_signed_data(io.BytesIO(data), len(data), "test.p7m")


def test_der_attached_content_is_located_not_loaded() -> None:
    data = _signed_data(b"noi dung " * 1000)
    parts = _read(data)
    assert parts.content is not None and parts.content_length() == 9000
    offset, length = parts.content[0]
    assert data[offset : offset + length] == b"noi dung " * 1000
    out = io.BytesIO()
    parts.write(out, io.BytesIO(data), content_sha=None)
    assert out.getvalue() == data  # DER in, the same DER out


def test_ber_indefinite_lengths_and_chunked_content() -> None:
    """What openssl cms -sign -stream writes: indefinite lengths, the content in chunks."""
    der = _signed_data(None)
    parts = _read(der)
    chunks = b"\x04\x03abc\x04\x02de"
    econtent = b"\xa0\x80\x24\x80" + chunks + b"\x00\x00\x00\x00"
    encap = b"\x30\x80" + parts.content_type + econtent + b"\x00\x00"
    body = parts.version + parts.digest_algorithms + encap + b"\x31\x80" + b"".join(
        parts.signer_infos
    ) + b"\x00\x00"  # fmt: skip
    ber = b"\x30\x80" + bytes.fromhex("06092a864886f70d010702") + b"\xa0\x80\x30\x80"
    ber += body + b"\x00\x00" * 3
    read = _read(ber)
    assert [ber[o : o + n] for o, n in read.content or []] == [b"abc", b"de"]
    assert read.signer_infos == parts.signer_infos


@pytest.mark.parametrize("cut", [1, 2, 5, 40, -300, -1])
def test_truncated_signatures_are_malformed_input(cut: int) -> None:
    data = _signed_data(b"x" * 500)
    with pytest.raises(InputFormatError):
        _read(data[:cut])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_fail_only_as_malformed_input(data: bytes) -> None:
    try:
        _read(data)
    except InputFormatError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=255))
def test_one_changed_byte_never_escapes_as_another_error(position: int, value: int) -> None:
    data = bytearray(_signed_data(b"y" * 300))
    data[position % len(data)] = value
    try:
        _read(bytes(data))
    except InputFormatError:
        pass


@pytest.mark.parametrize(
    ("text", "days"), [("180d", 180), ("180", 180), ("26w", 182), ("1y", 365), (" 30D ", 30)]
)
def test_renewal_window(text: str, days: int) -> None:
    from signkit.cli.extend import parse_window

    assert parse_window(text) == timedelta(days=days)


def test_renewal_window_refuses_words() -> None:
    from signkit.cli.extend import parse_window

    with pytest.raises(UsageError):
        parse_window("six months")
