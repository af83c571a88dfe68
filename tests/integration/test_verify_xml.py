"""`signkit verify` on XML: xmlsec1-signed e-invoices, XAdES, wrapping variants, xmlsec1 as
referee; the chain and revocation are checked against the live test PKI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.infra import PkiServices
from support.runner import Runner
from support.xmldocs import (
    change_amount,
    duplicate_id,
    hide_in_object,
    move_to_wrapper,
    pem,
    with_doctype,
    xades_sign,
    xmlsec_sign,
    xmlsec_verify,
)

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

Verify = Callable[..., tuple[Any, dict[str, Any]]]
XADES = "http://uri.etsi.org/01903/v1.3.2#"


@pytest.fixture
def verify(signkit: Runner, pki: PkiServices, trust: Path, tmp_path: Path) -> Verify:
    def run(*args: str) -> tuple[Any, dict[str, Any]]:
        proc = signkit(
            "verify",
            *args,
            "--trust",
            str(trust),
            "--json",
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
        )
        assert proc.stdout, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc, json.loads(proc.stdout)

    return run


def sig0(data: dict[str, Any]) -> dict[str, Any]:
    signatures: list[dict[str, Any]] = data["documents"][0]["verdict"]["signatures"]
    return signatures[0]


def test_xmlsec1_signed_invoice_passes(verify: Verify, tmp_path: Path) -> None:
    doc = xmlsec_sign(tmp_path, "signer-vn")
    proc, data = verify(str(doc))
    assert proc.returncode == 0, proc.stderr
    s = sig0(data)
    assert data["documents"][0]["verdict"]["format"] == "xml"
    assert s["indication"] == "PASSED" and s["intact"] and s["signature_valid"] and s["trusted"]
    assert s["name"] == "seller" and s["revocation"] == "good"
    assert s["coverage"] == "element:DLHDon#data (/HDon/DLHDon)"  # what was actually signed
    assert "CN=Nguyễn Văn An" in s["signer_subject"]
    assert s["level"] is None  # plain XMLDSig, no XAdES properties
    assert xmlsec_verify(doc, tmp_path)


@pytest.mark.parametrize(
    ("tamper", "indication", "sub", "referee"),
    [
        (change_amount, "FAILED", "HASH_FAILURE", False),
        (duplicate_id, "FAILED", "WRAPPED_SIGNED_ELEMENT", False),
        # xmlsec1 checks the maths only: it accepts both wrapped documents
        (hide_in_object, "FAILED", "WRAPPED_SIGNED_ELEMENT", True),
        (move_to_wrapper, "FAILED", "WRAPPED_SIGNED_ELEMENT", True),
    ],
)
def test_tampering_and_wrapping(
    verify: Verify, tmp_path: Path, tamper: Any, indication: str, sub: str, referee: bool
) -> None:
    # prefixed ds: and exclusive c14n: moving the element under ds:Object changes nothing
    # its digest covers, so only the wrapping check can catch it
    doc = xmlsec_sign(tmp_path, "signer-rsa2048", prefixed=True, exclusive=True)
    bad = tamper(doc, tmp_path / "bad.xml")
    proc, data = verify(str(bad))
    assert proc.returncode == 1, proc.stderr
    s = sig0(data)
    assert (s["indication"], s["sub_indication"]) == (indication, sub), s
    assert xmlsec_verify(bad, tmp_path) is referee


def test_verdicts_agree_with_xmlsec1(verify: Verify, tmp_path: Path) -> None:
    """Where xmlsec1 can judge (maths and trust), it agrees with us."""
    good = xmlsec_sign(tmp_path / "g", "signer-rsa2048")
    cases = {
        "good": good,
        "altered": change_amount(good, tmp_path / "altered.xml"),
        "duplicate-id": duplicate_id(good, tmp_path / "dup.xml"),
        "leaf-only-untrusted-chain": xmlsec_sign(tmp_path / "l", "signer-rsa3072", chain=False),
    }
    for name, path in cases.items():
        _, data = verify(str(path), "--offline", "--revocation", "off")
        ours = data["documents"][0]["verdict"]["indication"] == "PASSED"
        assert xmlsec_verify(path, tmp_path) is ours or name == "leaf-only-untrusted-chain", name
        if name == "leaf-only-untrusted-chain":
            # offline, the intermediate is nowhere: we cannot trust it; xmlsec1 gets it
            # from its --untrusted-pem, so only the indication is compared, not the tool
            assert sig0(data)["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"


def test_leaf_only_chain_completed_by_aia(verify: Verify, tmp_path: Path) -> None:
    doc = xmlsec_sign(tmp_path, "signer-rsa3072", chain=False)
    proc, data = verify(str(doc))
    assert proc.returncode == 0, proc.stderr
    assert sig0(data)["trusted"]


@pytest.mark.parametrize(
    ("label", "sub", "revocation"),
    [
        ("signer-revoked", "REVOKED_NO_POE", "revoked"),
        ("signer-expired", "OUT_OF_BOUNDS_NO_POE", "unknown"),
    ],
)
def test_unusable_signers(
    verify: Verify, tmp_path: Path, label: str, sub: str, revocation: str
) -> None:
    doc = xmlsec_sign(tmp_path, label)
    proc, data = verify(str(doc))
    assert proc.returncode == 6, proc.stderr
    s = sig0(data)
    assert (s["indication"], s["sub_indication"], s["revocation"]) == (
        "INDETERMINATE",
        sub,
        revocation,
    ), s


def test_sha1_is_weak_unless_allowed(verify: Verify, tmp_path: Path) -> None:
    doc = xmlsec_sign(tmp_path, "signer-rsa2048", digest="sha1")
    proc, data = verify(str(doc))
    assert proc.returncode == 6, proc.stderr
    s = sig0(data)
    assert s["sub_indication"] == "CRYPTO_CONSTRAINTS_FAILURE"
    assert "digest SHA1" in s["weak_algorithms"]
    proc, data = verify(str(doc), "--insecure-allow-weak")
    assert proc.returncode == 0, proc.stderr
    assert any("--insecure-allow-weak" in w for w in sig0(data)["warnings"])


def xmlsec1_xades(path: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    """xmlsec1 on a XAdES document: the SignedProperties reference resolved too."""
    return subprocess.run(
        [
            *("xmlsec1", "--verify", "--trusted-pem", str(pem("root-ca", directory))),
            *("--untrusted-pem", str(pem("interm-ca", directory))),
            *("--id-attr:Id", "DLHDon", "--id-attr:Id", f"{XADES}:SignedProperties"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_xades_signed_properties(verify: Verify, tmp_path: Path) -> None:
    doc = xades_sign(tmp_path, "signer-rsa2048")
    # the referee: xmlsec1 checks both references (the invoice, the signed properties)
    referee = xmlsec1_xades(doc, tmp_path)
    assert referee.returncode == 0 and "SignedProperties" in doc.read_text(), referee.stderr
    proc, data = verify(str(doc))
    assert proc.returncode == 0, proc.stderr
    s = sig0(data)
    assert s["level"] == "B-B" and s["claimed_signing_time"]
    assert s["coverage"].startswith("entire-document, signature's own ")


def test_xades_signing_certificate_must_be_the_signer(verify: Verify, tmp_path: Path) -> None:
    """Signed properties name another certificate than the one whose key verifies."""
    doc = xades_sign(tmp_path, "signer-rsa2048", cert_label="signer-rsa3072")
    # the premise, by xmlsec1: the signature itself is sound; only the signed
    # properties name another certificate
    assert xmlsec1_xades(doc, tmp_path).returncode == 0
    proc, data = verify(str(doc))
    assert proc.returncode == 6, proc.stderr
    s = sig0(data)
    assert s["indication"] == "INDETERMINATE"
    assert s["sub_indication"] == "NO_SIGNING_CERTIFICATE_FOUND"
    assert "SigningCertificate digest" in s["detail"]


def test_dtd_is_refused_and_unsigned_xml_fails(verify: Verify, tmp_path: Path) -> None:
    doc = xmlsec_sign(tmp_path, "signer-rsa2048")
    bomb = with_doctype(doc, tmp_path / "bomb.xml")
    plain = tmp_path / "plain.xml"
    plain.write_text("<HDon><DLHDon/></HDon>")
    proc, data = verify(str(bomb), str(plain))
    assert proc.returncode == 1
    first, second = data["documents"]
    assert (
        first["status"] == "failed"
        and "the DOCTYPE declares or uses entities: refused" in (first["error_message"])
    )
    assert second["verdict"]["indication"] == "FAILED"
    assert second["verdict"]["sentence"] == "The document carries no signature."


def test_xades_signature_timestamp(verify: Verify, tmp_path: Path) -> None:
    """B-T: the TSA's token over the canonical SignatureValue is checked (imprint,
    TSA signature, TSA chain to --trust). A token over anything else does not
    belong to this signature (copied or forged): FAILED, as EU DSS reports it."""
    from support.xmldocs import add_signature_timestamp

    base = xades_sign(tmp_path, "signer-rsa2048")
    stamped = add_signature_timestamp(base, tmp_path / "b-t.xml")
    assert xmlsec1_xades(stamped, tmp_path).returncode == 0  # unsigned properties only
    proc, data = verify(str(stamped))
    assert proc.returncode == 0, proc.stderr
    s = sig0(data)
    assert s["level"] == "B-T" and s["timestamp_time"] and s["warnings"] == []
    assert s["best_signature_time"] == s["timestamp_time"]
    wrong = add_signature_timestamp(base, tmp_path / "wrong.xml", over=b"something else")
    proc, data = verify(str(wrong))
    assert proc.returncode == 1, proc.stderr
    s = sig0(data)
    assert (s["indication"], s["sub_indication"]) == ("FAILED", "TIMESTAMP_MISMATCH"), s
    assert s["intact"] and s["signature_valid"] and s["timestamp_time"] is None
    assert "SignatureTimeStamp does not cover this signature" in s["detail"]


def test_xades_revocation_values_judge_revocation_offline(
    signkit: Runner, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    """XAdES B-LT data in the unsigned properties (CertificateValues,
    RevocationValues) is used like a PDF's DSS: --offline can still judge."""
    from support.xmldocs import add_revocation_values

    base = xades_sign(tmp_path, "signer-rsa2048")
    with_values = add_revocation_values(base, tmp_path / "with-values.xml")

    def offline(path: Path) -> tuple[int, dict[str, Any]]:
        proc = signkit(
            "verify",
            str(path),
            "--trust",
            str(trust),
            "--offline",
            "--revocation",
            "hard",
            "--json",
            "--no-audit",
        )
        return proc.returncode, sig0(json.loads(proc.stdout))

    code, s = offline(with_values)
    assert code == 0 and s["indication"] == "PASSED", s
    assert s["revocation"] == "good" and s["level"] == "B-B", s
    # without them, offline and hard, the status cannot be established
    code, s = offline(base)
    assert code == 6 and s["indication"] == "INDETERMINATE", s
