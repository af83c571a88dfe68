"""`signkit verify` on what happens to a PDF after it is signed, and on what other
producers sign: permitted and forbidden changes (ISO 32000 DocMDP/FieldMDP), LTV
material and document time-stamps, copied time-stamps, algorithms, --at with
embedded validation data, --intermediates. Referees: pdfsig and openssl cms
judge the maths; the verdicts on changes are signkit's own (no referee judges
incremental updates), so each case is built to differ from an intact one in
exactly one change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.infra import PkiServices, pki_certificate
from support.pdfcheck import pdfsig, qpdf_ok
from support.runner import Runner
from support.verifydocs import (
    add_annotation,
    add_document_timestamp,
    add_text_fields,
    algorithm_pki,
    copy_signature_timestamp,
    damage_signature_dictionary,
    fill_field,
    flip_signed_byte,
    openssl_cms_verifies,
    openssl_signature_timestamp_verifies,
    openssl_ts_verifies,
    pyhanko_sign,
    sample,
    sign_with_files,
    signed_elsewhere_with_utf16_lang,
    swap_document_timestamp,
    timestamp_that_is_a_signature,
)

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

Verify = Callable[..., tuple[Any, dict[str, Any]]]


@pytest.fixture
def verify(signkit: Runner, pki: PkiServices, trust: Path) -> Verify:
    """`signkit verify --json` trusting the test root; returns (process, JSON)."""

    def run(*args: str, trusted: bool = True) -> tuple[Any, dict[str, Any]]:
        extra = ["--trust", str(trust)] if trusted else []
        proc = signkit("verify", *args, *extra, "--json", "--no-audit")
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.stdout, proc.stderr
        return proc, json.loads(proc.stdout)

    return run


def sigs(data: dict[str, Any]) -> list[dict[str, Any]]:
    signatures: list[dict[str, Any]] = data["documents"][0]["verdict"]["signatures"]
    return signatures


def doc_verdict(data: dict[str, Any]) -> tuple[str, str]:
    v = data["documents"][0]["verdict"]
    return v["indication"], v["sub_indication"]


# ------------------------------------------------------------ changes after signing


def test_annotation_after_an_approval_signature_passes_and_is_listed(
    verify: Verify, signkit: Runner, trust: Path, tmp_path: Path
) -> None:
    """Regression: a comment added after an approval signature was FAILED
    (pyHanko's analysis has no rule for annotations); ISO 32000 allows it, as
    Adobe Reader and EU DSS do."""
    signed = pyhanko_sign(sample(tmp_path), tmp_path / "signed.pdf", "signer-rsa2048")
    commented = add_annotation(signed, tmp_path / "commented.pdf")
    proc, data = verify(str(commented))
    assert proc.returncode == 0, proc.stderr
    (s,) = sigs(data)
    assert s["indication"] == "PASSED" and s["modification_level"] == "annotations"
    assert s["changes"] == ["annotation added on page 1 (/Text)"]
    assert any("annotation added on page 1 (/Text)" in w for w in s["warnings"])
    # the verdict lines list it too (--json stands in for them)
    lines = signkit("verify", str(commented), "--trust", str(trust), "--no-audit")
    assert "annotation added on page 1" in lines.stdout, lines.stdout
    assert "Signature is Valid" in pdfsig(commented) and qpdf_ok(commented)


@pytest.mark.parametrize(("level", "passes"), [(1, False), (2, False), (3, True)])
def test_annotation_after_a_certification_follows_its_docmdp_level(
    verify: Verify, tmp_path: Path, level: int, passes: bool
) -> None:
    signed = pyhanko_sign(
        sample(tmp_path), tmp_path / "certified.pdf", "signer-rsa2048", certify=level
    )
    commented = add_annotation(signed, tmp_path / "commented.pdf")
    proc, data = verify(str(commented))
    (s,) = sigs(data)
    assert s["certification_level"] == level
    if passes:
        assert proc.returncode == 0, proc.stderr
        assert s["indication"] == "PASSED" and s["modification_level"] == "annotations"
    else:
        assert proc.returncode == 1, proc.stderr
        assert (s["indication"], s["sub_indication"]) == ("FAILED", "MODIFIED_AFTER_SIGNING")
        assert f"DocMDP level {level}" in s["detail"]


def test_filling_a_field_after_signing_passes_unless_a_lock_forbids_it(
    verify: Verify, tmp_path: Path
) -> None:
    form = add_text_fields(sample(tmp_path), tmp_path / "form.pdf", ("SoHoSo", "GhiChu"))
    signed = pyhanko_sign(form, tmp_path / "signed.pdf", "signer-rsa2048", lock_fields=("SoHoSo",))
    note = fill_field(signed, tmp_path / "note.pdf", "GhiChu", "Da nhan ban goc")
    proc, data = verify(str(note))
    assert proc.returncode == 0, proc.stderr
    (s,) = sigs(data)
    assert s["modification_level"] == "form-filling"
    assert s["changes"] == ["form field 'GhiChu' filled in"]
    locked = fill_field(signed, tmp_path / "locked.pdf", "SoHoSo", "12/QD-UBND")
    proc, data = verify(str(locked))
    assert proc.returncode == 1, proc.stderr
    (s,) = sigs(data)
    assert (s["indication"], s["sub_indication"]) == ("FAILED", "MODIFIED_AFTER_SIGNING")
    assert "FieldMDP" in s["detail"] and "SoHoSo" in s["detail"]
    # certified for form filling (DocMDP 2): filling is what it allows
    certified = pyhanko_sign(form, tmp_path / "certified.pdf", "signer-rsa2048", certify=2)
    filled = fill_field(certified, tmp_path / "filled.pdf", "SoHoSo", "12/QD-UBND")
    proc, data = verify(str(filled))
    assert proc.returncode == 0, proc.stderr
    assert sigs(data)[0]["modification_level"] == "form-filling"


def test_signing_a_field_an_earlier_signature_locks_is_refused(
    sk: Any, verify: Verify, tmp_path: Path, trust: Path
) -> None:
    """Regression (found by fuzzing `sign`): a document whose signature locks
    every field (FieldMDP /All) was signed, and that signature then read
    FAILED. A lock on other fields leaves a new signature free."""
    key = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
    every = pyhanko_sign(
        sample(tmp_path / "a"), tmp_path / "all.pdf", "signer-rsa2048", lock_all=True
    )
    refused = sk(str(every), "-o", str(tmp_path / "all-2.pdf"), *key, "--trust", str(trust))
    assert refused.returncode == 1, refused.stderr
    assert "the earlier signature Sig1 locks every field against later changes" in refused.stderr
    assert not (tmp_path / "all-2.pdf").exists()
    named = pyhanko_sign(
        sample(tmp_path / "b"), tmp_path / "one.pdf", "signer-rsa2048", lock_fields=("Duyet",)
    )
    locked = sk(str(named), "-o", str(tmp_path / "one-2.pdf"), *key, "--field", "Duyet")
    assert locked.returncode == 1 and "locks the field Duyet" in locked.stderr, locked.stderr
    free = tmp_path / "one-3.pdf"
    assert sk(str(named), "-o", str(free), *key, "--trust", str(trust)).returncode == 0
    proc, data = verify(str(free))
    assert proc.returncode == 0, proc.stderr
    assert [e["indication"] for e in sigs(data)] == ["PASSED", "PASSED"], sigs(data)


def test_tampered_without_trust_anchor_is_failed_not_indeterminate(
    verify: Verify, tmp_path: Path
) -> None:
    """Regression: with no trust anchor a tampered document was INDETERMINATE;
    FAILED dominates whatever the chain (EN 319 102-1)."""
    signed = pyhanko_sign(sample(tmp_path), tmp_path / "signed.pdf", "signer-rsa2048")
    bad = flip_signed_byte(signed, tmp_path / "bad.pdf")
    proc, data = verify(str(bad), trusted=False)
    assert proc.returncode == 1, proc.stderr
    assert doc_verdict(data) == ("FAILED", "HASH_FAILURE")
    assert "Digest Mismatch" in pdfsig(bad) or "Signature is Invalid" in pdfsig(bad)


# ------------------------------------------------------------ LTV and document time-stamps


def test_ltv_material_after_three_signatures_is_not_a_modification(
    sk: Any, verify: Verify, tmp_path: Path, trust: Path
) -> None:
    """Regression: three signatures, a DSS and a document time-stamp were reported
    "changed after signing"."""
    src = sample(tmp_path)
    keys = (
        ("signkit-test-a", "signer-rsa2048", "B-B"),
        ("signkit-test-b", "leader-vn", "B-B"),
        ("signkit-test-a", "signer-ec256", "B-LTA"),
    )
    current = src
    for n, (token, key, level) in enumerate(keys):
        out = tmp_path / f"step{n}.pdf"
        proc = sk(
            str(current), "-o", str(out), "--token-label", token, "--key-label", key,
            "--level", level, "--tsa", "http://127.0.0.1:9781/signkit-test/tsa/tsa",
            "--trust", str(trust),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        current = out
    proc, data = verify(str(current))
    assert proc.returncode == 0, proc.stderr
    entries = sigs(data)
    assert [e["kind"] for e in entries] == ["signature"] * 3 + ["document-timestamp"]
    assert all(e["indication"] == "PASSED" for e in entries), entries
    assert entries[2]["level"] == "B-LTA"
    assert entries[0]["modification_level"] == "form-filling"  # the later signatures
    assert entries[2]["modification_level"] == "lta-updates"
    assert "validation data (DSS) added or updated" in entries[2]["changes"]
    assert not any("changed after signing" in w for e in entries[2:] for w in e["warnings"])
    assert pdfsig(current).count("Signature is Valid") == 3  # pdfsig skips time-stamps
    assert openssl_ts_verifies(current, 3, tmp_path / "openssl")


def test_a_text_string_stored_again_in_another_encoding_is_not_a_change(
    sk: Any, verify: Verify, tmp_path: Path, trust: Path
) -> None:
    """Regression (found by signing the corpus): signing a document signed
    elsewhere turned its signature FAILED, "the document catalog's /Lang entry
    changed": pyHanko, rewriting the catalog, stored the UTF-16 /Lang (vi) in
    PDFDocEncoding, and signkit compared the bytes, not the text."""
    first = signed_elsewhere_with_utf16_lang(tmp_path / "in" / "elsewhere.pdf")
    assert b"/Lang (\xfe\xff\x00v\x00i)" in first.read_bytes()
    out = tmp_path / "countersigned.pdf"
    key = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
    assert sk(str(first), "-o", str(out), *key, "--trust", str(trust)).returncode == 0
    assert b"/Lang (vi)" in out.read_bytes()  # stored again, as PDFDocEncoding
    proc, data = verify(str(out))
    assert proc.returncode == 0, proc.stderr
    assert [e["indication"] for e in sigs(data)] == ["PASSED", "PASSED"], sigs(data)
    assert pdfsig(out).count("Signature is Valid") == 2


def test_two_document_timestamps_are_judged_as_timestamps(verify: Verify, tmp_path: Path) -> None:
    """Regression: a file with two document time-stamps was FORMAT_FAILURE."""
    signed = pyhanko_sign(
        sample(tmp_path), tmp_path / "signed.pdf", "signer-rsa2048", timestamp=True
    )
    once = add_document_timestamp(signed, tmp_path / "once.pdf")
    twice = add_document_timestamp(once, tmp_path / "twice.pdf")
    proc, data = verify(str(twice))
    assert proc.returncode == 0, proc.stderr
    first, ts1, ts2 = sigs(data)
    assert first["kind"] == "signature" and first["indication"] == "PASSED"
    for ts in (ts1, ts2):
        assert ts["kind"] == "document-timestamp" and ts["indication"] == "PASSED", ts
        assert ts["signer_subject"] == "CN=signkit Test TSA,O=signkit test PKI,C=VN"
        assert ts["intact"] and ts["signature_valid"] and ts["trusted"]
    assert ts1["modification_level"] == "lta-updates"  # the second time-stamp came after
    assert pdfsig(twice).count("Signature is Valid") == 1  # pdfsig skips time-stamps
    assert openssl_ts_verifies(twice, 1, tmp_path / "ts1")
    assert openssl_ts_verifies(twice, 2, tmp_path / "ts2")


def test_copied_timestamps_are_failed(verify: Verify, tmp_path: Path) -> None:
    """A signature time-stamp over another signature, and a document time-stamp
    over other bytes, prove nothing: FAILED whatever the chain."""
    a = pyhanko_sign(sample(tmp_path / "a"), tmp_path / "a.pdf", "signer-rsa2048", timestamp=True)
    b = pyhanko_sign(sample(tmp_path / "b"), tmp_path / "b.pdf", "signer-vn", timestamp=True)
    copied = copy_signature_timestamp(a, b, tmp_path / "copied.pdf")
    proc, data = verify(str(copied))
    assert proc.returncode == 1, proc.stderr
    (s,) = sigs(data)
    assert (s["indication"], s["sub_indication"]) == ("FAILED", "HASH_FAILURE")
    assert "time-stamp is over another signature value" in s["detail"]
    assert "Signature is Valid" in pdfsig(copied)  # the signature itself is intact
    stamped_a = add_document_timestamp(a, tmp_path / "a-ts.pdf")
    stamped_b = add_document_timestamp(b, tmp_path / "b-ts.pdf")
    swapped = swap_document_timestamp(stamped_a, stamped_b, tmp_path / "swapped.pdf")
    proc, data = verify(str(swapped))
    assert proc.returncode == 1, proc.stderr
    signature, ts = sigs(data)
    assert signature["indication"] == "PASSED"
    assert (ts["indication"], ts["sub_indication"]) == ("FAILED", "HASH_FAILURE")
    assert doc_verdict(data)[0] == "FAILED"
    assert not openssl_ts_verifies(swapped, 1, tmp_path / "openssl")


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        ("negative-range", "the signed byte range cannot be read (ValueError: negative seek"),
        ("posing-as-timestamp", "the document time-stamp cannot be read (the time-stamp token"),
        ("timestamp-is-a-signature", "TSTInfo"),
    ],
)
def test_a_signature_dictionary_or_token_that_is_not_what_it_says_gets_a_verdict(
    verify: Verify, tmp_path: Path, damage: str, detail: str
) -> None:
    """Regression (found by fuzzing third-party PDFs): a /ByteRange that starts
    before the file, an ordinary signature whose /SubFilter says document
    time-stamp, and a signature time-stamp token that is a signature over
    data (no TSTInfo) each ended `signkit verify` with an internal error
    (exit 70). Each is the document's fault: FAILED, with the reason. The
    outside referees agree that what signkit fails does not hold."""
    signed = pyhanko_sign(
        sample(tmp_path / "in"), tmp_path / "signed.pdf", "signer-rsa2048", timestamp=True
    )
    damaged = tmp_path / f"{damage}.pdf"
    if damage == "timestamp-is-a-signature":
        timestamp_that_is_a_signature(signed, damaged)
    else:
        damage_signature_dictionary(signed, damaged, damage)
    proc, data = verify(str(damaged))
    assert proc.returncode == 1, proc.stderr
    document = data["documents"][0]
    assert document["error_code"] is None, document["error_message"]
    (s,) = sigs(data)
    assert s["indication"] == "FAILED", s
    assert detail in s["detail"], s["detail"]
    referee = pdfsig(damaged)
    if damage == "negative-range":
        assert "Illegal values in ByteRange array" in referee, referee
        assert "Signature is Valid" not in referee, referee
    elif damage == "posing-as-timestamp":
        assert "Unable to validate this type of signature" in referee, referee
        assert "Signature is Valid" not in referee, referee
        # The /SubFilter is inside the signed bytes: the signature no longer holds.
        assert not openssl_cms_verifies(damaged, tmp_path / "openssl")
    else:
        # The signature over the document holds (pdfsig, which does not read
        # time-stamps, calls it valid); its time-stamp token is no time-stamp:
        # openssl ts refuses it, and takes the intact one.
        assert "Signature is Valid" in referee, referee
        assert openssl_signature_timestamp_verifies(signed, tmp_path / "openssl-intact")
        assert not openssl_signature_timestamp_verifies(damaged, tmp_path / "openssl")


# ------------------------------------------------------------ algorithms


@pytest.mark.parametrize("kind", ["ed25519", "ed448", "rsa-pss", "ec-p384", "ec-p521"])
def test_algorithms_pyhanko_can_check_are_checked(
    signkit: Runner, tmp_path: Path, kind: str
) -> None:
    """Regression: an Ed25519 signature crashed the verifier (asn1crypto has no
    key size for EdDSA keys)."""
    ca, leaf, key = algorithm_pki(tmp_path / "pki", kind)
    doc = sign_with_files(
        sample(tmp_path), tmp_path / f"{kind}.pdf", key, leaf, ca, pss=kind == "rsa-pss"
    )
    assert openssl_cms_verifies(doc, tmp_path / "openssl")  # the referee
    base = ["verify", str(doc), "--trust", str(ca), "--revocation", "off", "--json", "--no-audit"]
    proc = signkit(*base)
    assert proc.returncode == 0, proc.stderr
    (s,) = sigs(json.loads(proc.stdout))
    assert s["indication"] == "PASSED" and s["signature_valid"] and s["weak_algorithms"] == []
    bad = flip_signed_byte(doc, tmp_path / "bad.pdf")
    proc = signkit("verify", str(bad), *base[2:])
    assert proc.returncode == 1
    assert not openssl_cms_verifies(bad, tmp_path / "openssl-bad")


# ------------------------------------------------------------ --at and --intermediates


def test_at_passes_with_embedded_chain_and_revocation_though_expired_since(
    signkit: Runner, tmp_path: Path, trust: Path
) -> None:
    """A signature from 2022 by a certificate that expired in 2023, carrying its chain
    and the OCSP and CRL answers of the time: offline, with revocation required, it
    PASSES as of 2022 and is INDETERMINATE today."""
    from support.verifydocs import add_dss_as_of

    doc = pyhanko_sign(sample(tmp_path), tmp_path / "old.pdf", "signer-expired")
    ltv = add_dss_as_of(
        doc, tmp_path / "old-ltv.pdf", "signer-expired", "2022-06-01T00:00:00+00:00"
    )
    base = ["verify", str(ltv), "--trust", str(trust), "--offline", "--revocation", "hard"]
    proc = signkit(*base, "--at", "2022-06-01T09:00:00+07:00", "--json", "--no-audit")
    assert proc.returncode == 0, proc.stderr
    (s,) = sigs(json.loads(proc.stdout))
    assert s["indication"] == "PASSED" and s["revocation"] == "good"
    now = signkit(*base, "--json", "--no-audit")
    assert now.returncode == 6  # today the certificate is expired, the answers stale
    assert sigs(json.loads(now.stdout))[0]["indication"] == "INDETERMINATE"


def test_intermediates_complete_a_chain_offline(
    signkit: Runner, tmp_path: Path, trust: Path
) -> None:
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "leaf-only.pdf", "clerk-vn", embed_chain=False)
    base = ["verify", str(doc), "--trust", str(trust), "--offline", "--revocation", "off"]
    proc = signkit(*base, "--json", "--no-audit")
    assert proc.returncode == 6
    assert sigs(json.loads(proc.stdout))[0]["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    folder = tmp_path / "cas"
    folder.mkdir()
    (folder / "interm.der").write_bytes(pki_certificate("interm-ca"))
    for given in (folder / "interm.der", folder):
        proc = signkit(*base, "--intermediates", str(given), "--json", "--no-audit")
        assert proc.returncode == 0, proc.stderr
        assert sigs(json.loads(proc.stdout))[0]["trusted"]
    missing = signkit(*base, "--intermediates", str(tmp_path / "nope.pem"), "--no-audit")
    assert missing.returncode == 3 and "nope.pem" in missing.stderr
    assert "Traceback" not in missing.stderr
