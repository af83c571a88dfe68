"""Encrypted PDFs as offices receive them: "secured" with an owner password
only (they open without a prompt and restrict changes), or with a password
to open. qpdf encrypts them; pdfsig and qpdf judge the signed copies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.infra import FIXTURES, pki_certificate

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLE = FIXTURES / "samples" / "decision.pdf"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
OWNER = "owner-secret"


def encrypt(source: Path, target: Path, *restrict: str, bits: str = "256", user: str = "") -> Path:
    subprocess.run(
        ["qpdf", "--encrypt", user, OWNER, bits, *restrict, "--", str(source), str(target)],
        check=True,
    )
    return target


def with_empty_field(target: Path) -> Path:
    """decision.pdf with an empty signature field "Approval", as a form
    prepared for signing has it."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    with SAMPLE.open("rb") as fh:
        writer = IncrementalPdfFileWriter(fh)
        append_signature_field(writer, SigFieldSpec("Approval", box=(60, 60, 260, 120)))
        with target.open("wb") as out:
            writer.write(out)
    return target


def for_recipients(target: Path) -> Path:
    """decision.pdf encrypted for a certificate (public-key security)."""
    from asn1crypto import x509
    from pyhanko.pdf_utils.crypt.pubkey import RecipientEncryptionPolicy
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    with SAMPLE.open("rb") as fh:
        writer = copy_into_new_writer(PdfFileReader(fh))
        cert = x509.Certificate.load(pki_certificate("signer-rsa2048"))
        writer.encrypt_pubkey([cert], policy=RecipientEncryptionPolicy(ignore_key_usage=True))
        with target.open("wb") as out:
            writer.write(out)
    return target


def pdfsig_valid(path: Path, *password: str) -> bool:
    check = subprocess.run(["pdfsig", *password, str(path)], capture_output=True, text=True)
    return "Signature is Valid" in check.stdout


def still_encrypted_without_a_password(path: Path) -> bool:
    # qpdf: 3 = encrypted, and it opens without a password
    return subprocess.run(["qpdf", "--requires-password", str(path)]).returncode == 3


def test_owner_password_only_pdfs_are_signed_as_their_permissions_allow(  # type: ignore[no-untyped-def]
    sk, signkit, tmp_path: Path, trust: Path
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    open256 = encrypt(SAMPLE, src / "open-aes256.pdf")
    open128 = encrypt(SAMPLE, src / "open-aes128.pdf", "--use-aes=y", bits="128")
    locked = encrypt(SAMPLE, src / "locked.pdf", "--modify=none", "--annotate=n", "--form=n")
    form = encrypt(
        with_empty_field(tmp_path / "form.pdf"), src / "form-fill-only.pdf", "--modify=form"
    )
    to_open = encrypt(SAMPLE, src / "to-open.pdf", user="open-me")
    recipients = for_recipients(src / "for-recipients.pdf")
    before = {p.name: p.read_bytes() for p in src.iterdir()}

    proc = sk(str(src), *KEY, "--output-dir", str(tmp_path / "out"), "--json")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    for doc in (open256, open128):
        assert docs[doc.name]["status"] == "signed", docs[doc.name]
        signed = tmp_path / "out" / doc.name
        assert pdfsig_valid(signed)
        assert subprocess.run(["qpdf", "--check", str(signed)], capture_output=True).returncode == 0
        assert still_encrypted_without_a_password(signed)
    refused = docs[locked.name]
    assert refused["status"] == "failed" and refused["error_code"] == 1
    assert "permissions do not allow" in refused["error_message"]
    assert "owner password" in refused["error_hint"]
    # fill-in only: a new field is refused, and the message names the empty one
    assert docs[form.name]["status"] == "failed"
    assert "--field Approval" in docs[form.name]["error_message"]
    assert docs[to_open.name]["status"] == "failed" and docs[to_open.name]["error_code"] == 3
    assert "password to open it" in docs[to_open.name]["error_message"]
    assert docs[recipients.name]["status"] == "failed" and docs[recipients.name]["error_code"] == 3
    assert "public-key security" in docs[recipients.name]["error_message"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [open128.name, open256.name]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before

    # a dry run foresees the refusal
    proc = sk(str(locked), *KEY, "--dry-run")
    assert proc.returncode == 1 and "permissions do not allow" in proc.stdout + proc.stderr
    # the existing empty field may be filled in without the owner password
    proc = sk(str(form), *KEY, "--field", "Approval", "--output-dir", str(tmp_path / "field"))
    assert proc.returncode == 0, proc.stderr
    assert pdfsig_valid(tmp_path / "field" / form.name)
    # the owner password allows everything; the copy stays encrypted
    secret = tmp_path / "owner-password"
    secret.write_text(OWNER + "\n")
    secret.chmod(0o600)
    proc = sk(
        str(locked), *KEY, "--password-file", str(secret), "--output-dir", str(tmp_path / "owner")
    )
    assert proc.returncode == 0, proc.stderr
    assert pdfsig_valid(tmp_path / "owner" / locked.name)
    assert still_encrypted_without_a_password(tmp_path / "owner" / locked.name)

    # a receiving office verifies them without a password
    proc = signkit(
        "verify",
        str(tmp_path / "out"),
        str(tmp_path / "field"),
        str(tmp_path / "owner"),
        "--trust",
        str(trust),
        "--revocation",
        "off",
        "--json",
    )
    report = json.loads(proc.stdout)
    assert [d["verdict"]["indication"] for d in report["documents"]] == ["PASSED"] * 4
    proc = signkit("verify", str(to_open), "--json")
    assert "password to open it" in proc.stdout
