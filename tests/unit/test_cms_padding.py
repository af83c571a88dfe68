"""Test helpers that rewrite a PDF's CMS in place read the whole CMS from the
zero-padded /Contents, also when its last byte is 0x00 (about one signature
in 256 ends so). Regression: the padding was stripped with the CMS's own last
zero byte, and the hostile-PDF corpus failed to build at random in CI."""

from __future__ import annotations

import sys

from asn1crypto import algos, cms

from support.infra import FIXTURES

sys.path.insert(0, str(FIXTURES))
from make_hostile_pdfs import _replace_cms


def _cms_ending_in_zero() -> bytes:
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"subject_key_identifier": b"\x01" * 20}  # type: ignore[dict-item]
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
            "signature": b"\x5a" * 255 + b"\x00",
        }
    )
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "data"},
            "signer_infos": [signer],
        }
    )
    der = cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()
    assert der.endswith(b"\x00")
    return der


def test_a_cms_ending_in_a_zero_byte_is_read_whole() -> None:
    der = _cms_ending_in_zero()
    hexed = der.hex().encode() + b"0" * 200  # the /Contents padding
    pdf = b"%PDF-1.7\n1 0 obj << /Contents <" + hexed + b"> >> endobj\n%%EOF\n"
    seen = []

    def mutate(signed: cms.SignedData) -> None:
        seen.append(bytes(signed["signer_infos"][0]["signature"].native))

    out = _replace_cms(pdf, mutate)
    assert seen == [b"\x5a" * 255 + b"\x00"]
    assert len(out) == len(pdf)
    assert out.index(der.hex().encode()) == pdf.index(hexed)  # written back whole, in place
