"""Resume: an existing output is skipped only when it carries this signer's
intact signature. One signed by another certificate, or whose signature is
broken, is never taken for done: the run fails that document ("output
exists") without touching the file, and --force signs it again. pdfsig and
xmlsec1 state the premise (whose signature, and whether it is intact) and
judge the result."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from support.infra import FIXTURES, SoftHsm, pki_certificate
from support.pdfcheck import pdfsig, qpdf_ok
from support.runner import Runner
from support.xmlcheck import xmlsec_verify

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

RSA = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
EC = ["--token-label", "signkit-test-a", "--key-label", "signer-ec256"]
RSA_CN = "signkit Test Signer RSA-2048"
EC_CN = "signkit Test Signer EC P-256"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def signers(path: Path) -> list[str]:
    """Signer common names as pdfsig reports them."""
    return re.findall(r"Signer Certificate Common Name: (.*)", pdfsig(path))


def break_pdf_signature(path: Path) -> None:
    """Change one byte the signature covers (in the binary comment after the
    header): the file still parses, its signature no longer matches."""
    data = bytearray(path.read_bytes())
    at = data.index(b"%", 1) + 1  # the second line's comment
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def sign(signkit: Runner, softhsm: SoftHsm, pki: object, tmp_path: Path):  # type: ignore[no-untyped-def]
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))

    def run(kind: str, *args: str):  # type: ignore[no-untyped-def]
        return signkit(
            "sign",
            kind,
            *args,
            "--trust",
            str(trust),
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            "--json",
            env={"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin},
        )

    return run


def test_a_pdf_signed_by_another_certificate_is_not_taken_for_done(sign, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "decision.pdf"
    shutil.copy(FIXTURES / "samples" / "decision.pdf", src)
    out = tmp_path / "signed.pdf"
    assert sign("pdf", str(src), "-o", str(out), *EC).returncode == 0
    assert signers(out) == [EC_CN]  # the premise, as pdfsig sees it
    before = sha256(out)
    again = sign("pdf", str(src), "-o", str(out), *RSA)
    assert again.returncode == 1, again.stderr
    assert f"error: {out}: output exists (use --force" in again.stderr
    (doc,) = json.loads(again.stdout)["documents"]
    assert doc["status"] == "failed" and "output exists (use --force" in doc["error_message"]
    assert sha256(out) == before  # untouched
    forced = sign("pdf", str(src), "-o", str(out), *RSA, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["totals"]["signed"] == 1
    assert signers(out) == [RSA_CN] and "Signature is Valid" in pdfsig(out) and qpdf_ok(out)


def test_a_pdf_whose_signature_is_broken_is_not_taken_for_done(sign, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "decision.pdf"
    shutil.copy(FIXTURES / "samples" / "decision.pdf", src)
    out = tmp_path / "signed.pdf"
    assert sign("pdf", str(src), "-o", str(out), *RSA).returncode == 0
    break_pdf_signature(out)
    report = pdfsig(out)  # the premise: our signer's signature, no longer intact
    assert signers(out) == [RSA_CN] and "Signature is Valid" not in report, report
    assert qpdf_ok(out)
    before = sha256(out)
    again = sign("pdf", str(src), "-o", str(out), *RSA)
    assert again.returncode == 1, again.stderr
    (doc,) = json.loads(again.stdout)["documents"]
    assert doc["status"] == "failed" and "output exists (use --force" in doc["error_message"]
    assert sha256(out) == before
    forced = sign("pdf", str(src), "-o", str(out), *RSA, "--force")
    assert forced.returncode == 0, forced.stderr
    assert signers(out) == [RSA_CN] and "Signature is Valid" in pdfsig(out)


def test_an_intact_pdf_of_this_signer_is_skipped(sign, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The control: the same steps without the break are a skip, file untouched."""
    src = tmp_path / "decision.pdf"
    shutil.copy(FIXTURES / "samples" / "decision.pdf", src)
    out = tmp_path / "signed.pdf"
    assert sign("pdf", str(src), "-o", str(out), *RSA).returncode == 0
    before = sha256(out)
    again = sign("pdf", str(src), "-o", str(out), *RSA)
    assert again.returncode == 0, again.stderr
    (doc,) = json.loads(again.stdout)["documents"]
    assert doc["status"] == "skipped" and doc["reason"] == (
        "output exists and carries this signer's intact signature"
    )
    assert sha256(out) == before


@pytest.mark.parametrize("how", ["another-signer", "broken"])
def test_an_xml_output_that_is_not_ours_and_intact_is_not_taken_for_done(  # type: ignore[no-untyped-def]
    sign, tmp_path: Path, how: str
) -> None:
    src = tmp_path / "generic.xml"
    shutil.copy(FIXTURES / "xml" / "generic.xml", src)
    out = tmp_path / "signed.xml"
    first = EC if how == "another-signer" else RSA
    assert sign("xml", str(src), "-o", str(out), *first).returncode == 0
    if how == "broken":
        data = out.read_bytes()
        out.write_bytes(data.replace(b"nguy\xc3\xaan v\xc4\x83n", b"nguy\xc3\xaan V\xc4\x83n", 1))
        assert out.read_bytes() != data
        assert xmlsec_verify(out, tmp_path).returncode != 0  # the premise: broken
    else:  # the premise: intact, and the certificate in it is the EC signer's
        assert xmlsec_verify(out, tmp_path).returncode == 0
        assert _b64(pki_certificate("signer-ec256")) in _flat(out)
    before = sha256(out)
    again = sign("xml", str(src), "-o", str(out), *RSA)
    (doc,) = json.loads(again.stdout)["documents"]
    assert doc["status"] == "failed" and "output exists (use --force" in doc["error_message"]
    # README: one rule for every format: exit 1, one error line, the document's
    # own code (3) in the report
    assert again.returncode == 1 and doc["error_code"] == 3, again.stderr
    assert f"error: {out}: output exists (use --force" in again.stderr
    assert sha256(out) == before
    forced = sign("xml", str(src), "-o", str(out), *RSA, "--force")
    assert forced.returncode == 0, forced.stderr
    assert xmlsec_verify(out, tmp_path).returncode == 0
    assert _b64(pki_certificate("signer-rsa2048")) in _flat(out)


def _b64(der: bytes) -> bytes:
    return base64.b64encode(der)


def _flat(path: Path) -> bytes:
    return path.read_bytes().replace(b"\n", b"").replace(b"\r", b"")
