"""Encrypted PDFs as offices receive them: "secured" with an owner password
only (they open without a prompt and restrict changes), or with a password
to open. qpdf encrypts them; pdfsig and qpdf judge the signed copies."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from support.infra import FIXTURES, TSA_URL, pki_certificate
from support.pdfcheck import openssl_document_timestamp, pdfsig

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLE = FIXTURES / "samples" / "decision.pdf"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
OWNER = "owner-secret"


def encrypt(
    source: Path,
    target: Path,
    *restrict: str,
    bits: str = "256",
    user: str = "",
    weak: bool = False,
) -> Path:
    subprocess.run(
        [
            "qpdf",
            *(["--allow-weak-crypto"] if weak else []),
            "--encrypt",
            user,
            OWNER,
            bits,
            *restrict,
            "--",
            str(source),
            str(target),
        ],
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


def changed_page(signed: Path, target: Path) -> Path:
    """``signed`` with text drawn on its page in a later revision (opened as
    a reader opens it, with the empty user password)."""
    import io

    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(signed.read_bytes()))
    writer.encrypt("")
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    drawn = writer.add_object(
        generic.StreamObject(stream_data=b"BT /F1 24 Tf 99 99 Td (PAID) Tj ET")
    )
    page["/Contents"] = generic.ArrayObject([page.raw_get("/Contents"), drawn])
    writer.update_container(page)
    with target.open("wb") as out:
        writer.write(out)
    return target


def test_an_encrypted_pdf_signed_again_keeps_its_earlier_signature(  # type: ignore[no-untyped-def]
    sk, signkit, tmp_path: Path, trust: Path
) -> None:
    """Regression: verify read the field names of an encrypted PDF's later
    revision undecrypted, so a second signature turned the first FAILED
    ("form field ... was removed")."""
    src = tmp_path / "in"
    src.mkdir()
    encrypt(SAMPLE, src / "aes256.pdf")
    encrypt(SAMPLE, src / "aes128.pdf", "--use-aes=y", bits="128")
    encrypt(SAMPLE, src / "rc4.pdf", "--use-aes=n", bits="128", weak=True)
    once, twice = tmp_path / "once", tmp_path / "twice"
    assert sk(str(src), *KEY, "--output-dir", str(once)).returncode == 0
    proc = sk(str(once), *KEY, "--rect", "20,20,60,20", "--output-dir", str(twice))
    assert proc.returncode == 0, proc.stderr
    for signed in sorted(twice.iterdir()):
        check = subprocess.run(["pdfsig", str(signed)], capture_output=True, text=True)
        assert check.stdout.count("Signature is Valid") == 2, (signed.name, check.stdout)
    tampered = changed_page(once / "aes256.pdf", tmp_path / "tampered.pdf")

    proc = signkit(
        "verify", str(twice), str(tampered), "--trust", str(trust), "--revocation", "off", "--json"
    )
    docs = {Path(d["input"]).name: d["verdict"] for d in json.loads(proc.stdout)["documents"]}
    for name in ("aes256.pdf", "aes128.pdf", "rc4.pdf"):
        found = [(s["indication"], s["detail"]) for s in docs[name]["signatures"]]
        assert found == [("PASSED", None)] * 2, (name, found)
    assert docs["tampered.pdf"]["signatures"][0]["sub_indication"] == "MODIFIED_AFTER_SIGNING"
    # the report's thumbnail of the signed page (it was left out for encrypted PDFs)
    from signkit.verify.thumbnails import render

    (thumb,) = render(twice / "aes256.pdf", ["Signature1", "Signature2"])
    assert thumb.fields == [(2, "Signature2")] and thumb.invisible == [(1, "Signature1")]


def test_an_owner_password_only_pdf_is_extended_as_its_permissions_allow(  # type: ignore[no-untyped-def]
    sk, signkit, tmp_path: Path, trust: Path
) -> None:
    archive = tmp_path / "archive"
    secret = tmp_path / "owner-password"
    secret.write_text(OWNER + "\n")
    secret.chmod(0o600)
    opened = encrypt(SAMPLE, tmp_path / "open.pdf")
    fill_only = encrypt(SAMPLE, tmp_path / "fill-only.pdf", "--modify=form")
    assert sk(str(opened), *KEY, "--output-dir", str(archive)).returncode == 0
    proc = sk(str(fill_only), *KEY, "--password-file", str(secret), "--output-dir", str(archive))
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in archive.iterdir()}

    proc = signkit(
        "extend", "-r", str(archive), "--tsa", TSA_URL, "--trust", str(trust),
        "--audit-log", str(tmp_path / "audit.jsonl"), "--json",
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    assert docs["open.pdf"]["status"] == "signed", docs["open.pdf"]
    refused = docs["fill-only.pdf"]
    assert refused["status"] == "failed", refused
    assert "do not allow adding time-stamps" in refused["error_message"]
    assert (archive / "fill-only.pdf").read_bytes() == before["fill-only.pdf"]
    raised = archive / "open.pdf"
    assert still_encrypted_without_a_password(raised)
    # pdfsig checks the signature; openssl ts the last document time-stamp
    blocks = pdfsig(raised).split("Signature #")[1:]
    assert len(blocks) >= 2 and "Signature is Valid" in blocks[0], blocks
    assert "Verification: OK" in openssl_document_timestamp(raised, tmp_path).stdout
    proc = signkit("verify", str(raised), "--trust", str(trust), "--offline", "--json")
    verdict = json.loads(proc.stdout)["documents"][0]["verdict"]
    assert verdict["indication"] == "PASSED", verdict
    assert verdict["signatures"][0]["level"] == "B-LTA", verdict["signatures"][0]


def field_rects(path: Path) -> list[tuple[str, list[float]]]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    with path.open("rb") as fh:
        reader = PdfFileReader(fh, strict=False)
        if reader.encrypted:
            reader.decrypt("")
        return [
            (str(s.field_name), [float(v) for v in s.sig_field["/Rect"]])
            for s in reader.embedded_signatures
        ]


def test_the_decree_30_leader_and_seal_on_an_owner_password_only_decision(  # type: ignore[no-untyped-def]
    sk, tmp_path: Path
) -> None:
    """Regression: the seal over the leader's signature read the encrypted
    page's annotation list undecrypted (internal error, exit 70)."""
    decision = FIXTURES / "nd30" / "rl-dots-14.pdf"
    images = FIXTURES / "samples"
    placed = {}
    for kind, source in (
        ("plain", decision),
        ("encrypted", encrypt(decision, tmp_path / "encrypted.pdf")),
    ):
        leader, sealed = tmp_path / f"{kind}-1.pdf", tmp_path / f"{kind}-2.pdf"
        proc = sk(
            str(source), *KEY, "-o", str(leader), "--preset", "nd30-person",
            "--image", str(images / "signature.png"), "--anchor-text", "Trần Thị Bình",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        proc = sk(
            str(leader), *KEY, "-o", str(sealed), "--preset", "nd30-org",
            "--image", str(images / "seal.png"), "--seal-mm", "36",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert pdfsig(sealed).count("Signature is Valid") == 2
        placed[kind] = field_rects(sealed)
    assert still_encrypted_without_a_password(tmp_path / "encrypted-2.pdf")
    assert placed["encrypted"] == placed["plain"] and len(placed["plain"]) == 2


def test_a_pdf_that_needs_a_password_to_open_is_verified_with_its_password(  # type: ignore[no-untyped-def]
    sk, signkit, tmp_path: Path, trust: Path
) -> None:
    """signkit signed PDFs that need a password to open (with --password-file)
    but could not verify them: verify takes the password the same ways, and
    still opens the others of the batch with the empty one."""
    opening = "mở-cửa-7"  # a password a clerk might choose
    secret = tmp_path / "password"
    secret.write_text(opening + "\n")
    secret.chmod(0o600)
    signed = tmp_path / "signed"
    to_open = encrypt(SAMPLE, tmp_path / "to-open.pdf", user=opening)
    owner_only = encrypt(SAMPLE, tmp_path / "owner-only.pdf")
    proc = sk(str(to_open), *KEY, "--password-file", str(secret), "--output-dir", str(signed))
    assert proc.returncode == 0, proc.stderr
    assert sk(str(owner_only), *KEY, "--output-dir", str(signed)).returncode == 0
    locked = signed / "to-open.pdf"
    assert subprocess.run(["qpdf", "--requires-password", str(locked)]).returncode == 0
    assert pdfsig_valid(locked, "-upw", opening)  # the referee, given the password

    common = ["--trust", str(trust), "--revocation", "off", "--json"]
    proc = signkit("verify", str(locked), *common)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)["documents"][0]
    assert "password to open it" in doc["error_message"], doc
    assert "--password-file" in doc["error_hint"]

    audit = tmp_path / "audit.jsonl"
    report = tmp_path / "report.json"
    for how, extra, env in (
        ("file", ["--password-file", str(secret)], None),
        ("environment", [], {"SIGNKIT_PDF_PASSWORD": opening}),
    ):
        proc = signkit(
            "verify", str(signed), *common, *extra,
            "--audit-log", str(audit), "--report", str(report), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, (how, proc.stdout, proc.stderr)
        verdicts = {
            Path(d["input"]).name: d["verdict"]["indication"]
            for d in json.loads(proc.stdout)["documents"]
        }
        assert verdicts == {"to-open.pdf": "PASSED", "owner-only.pdf": "PASSED"}, how
        for text in (proc.stdout, proc.stderr, audit.read_text(), report.read_text()):
            assert opening not in text, how

    wrong = tmp_path / "wrong"
    wrong.write_text("not-it\n")
    proc = signkit("verify", str(signed), *common, "--password-file", str(wrong))
    assert proc.returncode == 1
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    assert docs["to-open.pdf"]["error_message"].endswith("wrong password for the encrypted PDF")
    assert docs["owner-only.pdf"]["verdict"]["indication"] == "PASSED"
    assert "not-it" not in proc.stdout + proc.stderr

    # what was signed, extracted: encrypted as the document is
    extracted = tmp_path / "as-signed.pdf"
    proc = signkit("verify", str(locked), "--extract-revision", "1", "-o", str(extracted))
    assert proc.returncode != 0 and "password to open it" in proc.stderr
    assert not extracted.exists()
    proc = signkit(
        "verify", str(locked), "--extract-revision", "1", "-o", str(extracted),
        "--password-file", str(secret),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert locked.read_bytes().startswith(extracted.read_bytes())
    assert subprocess.run(["qpdf", "--requires-password", str(extracted)]).returncode == 0
    # the report's thumbnail of the signed page
    from signkit.verify.thumbnails import render

    (thumb,) = render(locked, ["Signature1"], opening)
    assert thumb.page == 1 and thumb.invisible == [(1, "Signature1")]


def test_encrypted_pdfs_are_extended_with_a_password(  # type: ignore[no-untyped-def]
    sk, signkit, tmp_path: Path, trust: Path
) -> None:
    """extend opens a PDF that needs a password to open, and an owner password
    lifts the permissions of a PDF they forbid; a document the password does
    not open still opens as it would without one."""
    opening = "mở-cửa-7"
    secret, owner = tmp_path / "password", tmp_path / "owner-password"
    secret.write_text(opening + "\n")
    owner.write_text(OWNER + "\n")
    archive = tmp_path / "archive"
    to_open = encrypt(SAMPLE, tmp_path / "to-open.pdf", user=opening)
    fill_only = encrypt(SAMPLE, tmp_path / "fill-only.pdf", "--modify=form")
    proc = sk(str(to_open), *KEY, "--password-file", str(secret), "--output-dir", str(archive))
    assert proc.returncode == 0, proc.stderr
    proc = sk(str(fill_only), *KEY, "--password-file", str(owner), "--output-dir", str(archive))
    assert proc.returncode == 0, proc.stderr
    before = {p.name: p.read_bytes() for p in archive.iterdir()}
    audit, report = tmp_path / "audit.jsonl", tmp_path / "report.json"
    common = ["--tsa", TSA_URL, "--trust", str(trust), "--audit-log", str(audit), "--json"]

    proc = signkit("extend", "-r", str(archive), *common)
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    assert "password to open it" in docs["to-open.pdf"]["error_message"]
    assert "--password-file" in docs["to-open.pdf"]["error_hint"]
    assert "owner password" in docs["fill-only.pdf"]["error_hint"]
    assert {p.name: p.read_bytes() for p in archive.iterdir()} == before
    # an owner-password-only PDF, which needs no password (the one given does not open it)
    opened = encrypt(SAMPLE, tmp_path / "open.pdf")
    assert sk(str(opened), *KEY, "--output-dir", str(archive)).returncode == 0

    # one password for the batch: it opens the first; the others open as before
    proc = signkit(
        "extend", "-r", str(archive), *common, "--password-file", str(secret),
        "--report", str(report),
    )  # fmt: skip
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    assert docs["to-open.pdf"]["status"] == "signed", docs["to-open.pdf"]
    assert docs["open.pdf"]["status"] == "signed", docs["open.pdf"]
    assert "do not allow adding time-stamps" in docs["fill-only.pdf"]["error_message"]
    assert (archive / "fill-only.pdf").read_bytes() == before["fill-only.pdf"]
    # the owner password lifts the permissions
    proc = signkit(
        "extend", str(archive / "fill-only.pdf"), *common, env={"SIGNKIT_PDF_PASSWORD": OWNER}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for text in (proc.stdout, proc.stderr, audit.read_text(), report.read_text()):
        assert opening not in text and OWNER not in text

    raised = archive / "to-open.pdf"
    assert subprocess.run(["qpdf", "--requires-password", str(raised)]).returncode == 0
    assert still_encrypted_without_a_password(archive / "fill-only.pdf")
    assert still_encrypted_without_a_password(archive / "open.pdf")
    # pdfsig checks the signature (given the password); openssl ts cannot open it
    check = subprocess.run(["pdfsig", "-upw", opening, str(raised)], capture_output=True, text=True)
    blocks = check.stdout.split("Signature #")[1:]
    assert len(blocks) >= 2 and "Signature is Valid" in blocks[0], check.stdout
    proc = signkit(
        "verify", str(archive), "--trust", str(trust), "--offline", "--json",
        "--password-file", str(secret),
    )  # fmt: skip
    for doc in json.loads(proc.stdout)["documents"]:
        verdict = doc["verdict"]
        assert verdict["indication"] == "PASSED", verdict
        assert verdict["signatures"][0]["level"] == "B-LTA", verdict["signatures"][0]
