"""Damaged CMS signatures end in a verdict or an input error, never a crash.

asn1crypto parses lazily: a broken field surfaced wherever it was first
touched (the signer's details, the validation, a digest name), so one flipped
bit in a .p7m could end `signkit verify` with an internal error (exit 70).
The signatures here are openssl's (another signer), damaged by seeded bit
flips; a package carrying one gets a line of its own.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from signkit.errors import SignkitError
from signkit.verify.cms import verify_cms
from signkit.verify.edxml import verify_edxml
from signkit.verify.policy import VerifyPolicy
from support.cmscheck import self_signed
from support.infra import FIXTURES

sys.path.insert(0, str(FIXTURES))
from make_edxml import Item, build_package

OFFLINE = VerifyPolicy(offline=True, revocation="off")
FLIPS = 150


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """An attached and a detached signature over the same bytes, by openssl."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    work = tmp_path_factory.mktemp("cms")
    cert_der, key = self_signed("Nguyễn Văn An")
    cert = x509.load_der_x509_certificate(cert_der)
    (work / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (work / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    data = work / "bang-luong.xlsx"
    data.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    out: dict[str, bytes] = {"data": data.read_bytes()}
    for kind, extra in (("p7m", ["-nodetach"]), ("p7s", [])):
        target = work / f"sig.{kind}"
        subprocess.run(
            ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256", *extra,
             "-in", str(data), "-signer", str(work / "cert.pem"), "-inkey", str(work / "key.pem"),
             "-out", str(target)],
            check=True,
        )  # fmt: skip
        out[kind] = target.read_bytes()
    return out


def damaged(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice((1, 3, 8))):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


@pytest.mark.parametrize("kind", ["p7m", "p7s"])
def test_damaged_signature_files_get_a_verdict_or_an_input_error(
    signed: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    rng = random.Random(f"signkit-{kind}")  # noqa: S311 - reproducible damage
    (tmp_path / "bang-luong.xlsx").write_bytes(signed["data"])
    path = tmp_path / f"bang-luong.xlsx.{kind}"
    verdicts = errors = 0
    for _ in range(FLIPS):
        path.write_bytes(damaged(signed[kind], rng))
        try:
            verdict = verify_cms(path, OFFLINE)
        except SignkitError:
            errors += 1
            continue
        verdicts += 1
        assert verdict.signatures
        # untrusted (self-signed, no --trust): never PASSED, damaged or not
        assert all(s.indication.value != "PASSED" for s in verdict.signatures)
    assert verdicts + errors == FLIPS
    assert verdicts > FLIPS // 3 and errors > 0  # both paths were exercised


def test_a_damaged_signature_in_a_package_is_a_line_of_its_own(
    signed: dict[str, bytes], tmp_path: Path
) -> None:
    rng = random.Random("signkit-edxml")  # noqa: S311 - reproducible damage
    path = tmp_path / "p.edxml"
    for _ in range(40):
        items = [
            Item("bang-luong.xlsx", signed["data"], "application/octet-stream"),
            Item("bang-luong.xlsx.p7s", damaged(signed["p7s"], rng), "application/pkcs7-signature"),
            Item("to-trinh.p7m", damaged(signed["p7m"], rng), "application/pkcs7-mime"),
        ]
        path.write_bytes(build_package(items))
        verdict = verify_edxml(path, OFFLINE)
        named = {s.attachment for s in verdict.signatures if s.attachment}
        assert named == {"bang-luong.xlsx.p7s", "to-trinh.p7m"}
        assert verdict.indication.value != "PASSED"


@pytest.mark.parametrize("kind", ["p7m", "p7s"])
def test_a_time_stamp_token_that_is_a_signature_gets_a_verdict(
    signed: dict[str, bytes], tmp_path: Path, kind: str
) -> None:
    """Regression: a signature time-stamp token that is an ordinary signature
    (no TSTInfo inside) ended `signkit verify` with an internal error (exit 70)
    when the token's time was read. Its signer trusted, the signature is FAILED."""
    from asn1crypto import cms

    info = cms.ContentInfo.load(signed[kind])
    impostor = cms.ContentInfo.load(signed["p7s"])
    info["content"]["signer_infos"][0]["unsigned_attrs"] = cms.CMSAttributes(
        [cms.CMSAttribute({"type": "signature_time_stamp_token", "values": [impostor]})]
    )
    (tmp_path / "bang-luong.xlsx").write_bytes(signed["data"])
    path = tmp_path / f"bang-luong.xlsx.{kind}"
    path.write_bytes(info.dump(force=True))
    signer = info["content"]["certificates"][0].chosen.dump()
    trusted = VerifyPolicy(anchors=(signer,), offline=True, revocation="off")
    (signature,) = verify_cms(path, trusted).signatures
    assert signature.indication.value == "FAILED", signature
    assert "TSTInfo" in (signature.detail or ""), signature.detail
    (untrusted,) = verify_cms(path, OFFLINE).signatures  # a verdict all the same
    assert untrusted.indication.value != "PASSED"
