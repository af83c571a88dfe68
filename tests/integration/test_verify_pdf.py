"""`signkit verify` on PDFs: real signkit-signed files, live PKI, tampering, referees."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.infra import TSA_URL, PkiServices, SoftHsm, pki_certificate
from support.pdfcheck import openssl_document_timestamp, pdfsig, qpdf_ok
from support.runner import Runner
from support.verifydocs import (
    add_annotation,
    add_page,
    flip_signed_byte,
    pyhanko_sign,
    remove_signature,
    replace_certificate,
    replace_content,
    sample,
)

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


@pytest.fixture(scope="module")
def signed(
    softhsm: SoftHsm, pki: PkiServices, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """decision.pdf signed by signkit at every level, once for the module."""
    base = tmp_path_factory.mktemp("signed")
    run = Runner(softhsm, base / "state")
    root = base / "root.der"
    root.write_bytes(pki_certificate("root-ca"))
    src = sample(base / "in")
    out: dict[str, Path] = {}
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    for level in LEVELS:
        dst = base / f"{level}.pdf"
        proc = run(
            "sign", "pdf", str(src), "-o", str(dst), *KEY, "--level", level,
            "--tsa", TSA_URL, "--trust", str(root), "--no-audit", env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        out[level] = dst
    certified = base / "certified.pdf"
    proc = run(
        "sign", "pdf", str(src), "-o", str(certified), *KEY, "--certify", "--docmdp", "1",
        "--trust", str(root), "--no-audit", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out["certified"] = certified
    # what signkit verify must PASS, the referees accept: pdfsig (signature
    # maths), openssl (the B-LTA document time-stamp) and qpdf (structure)
    for name, path in out.items():
        report = pdfsig(path)
        assert "Signature #1:" in report and report.count("Signature is Valid") == 1, report
        assert qpdf_ok(path), name
    doc_ts = openssl_document_timestamp(out["B-LTA"], base)
    assert "Verification: OK" in doc_ts.stdout, doc_ts.stdout + doc_ts.stderr
    return out


Verify = Callable[..., tuple[Any, dict[str, Any]]]


@pytest.fixture
def verify(signkit: Runner, pki: PkiServices, trust: Path, tmp_path: Path) -> Verify:
    """Run `signkit verify --json`; returns (process, parsed JSON)."""

    def run(*args: str, trusted: bool = True) -> tuple[Any, dict[str, Any]]:
        extra = ["--trust", str(trust)] if trusted else []
        proc = signkit(
            "verify", *args, *extra, "--json", "--audit-log", str(tmp_path / "audit.jsonl")
        )
        assert proc.stdout, proc.stderr
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc, json.loads(proc.stdout)

    return run


def sig0(data: dict[str, Any], doc: int = 0) -> dict[str, Any]:
    signatures: list[dict[str, Any]] = data["documents"][doc]["verdict"]["signatures"]
    return signatures[0]


def test_every_signkit_level_passes(
    verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    files = [str(signed[level]) for level in LEVELS]
    report = tmp_path / "report.json"
    proc, data = verify(*files, "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert data == json.loads(report.read_text())
    assert data["verdicts"] == {"PASSED": 4, "INDETERMINATE": 0, "FAILED": 0}
    for n, level in enumerate(LEVELS):
        doc = data["documents"][n]
        assert doc["status"] == "verified" and doc["verdict"]["indication"] == "PASSED"
        s = sig0(data, n)
        assert s["level"] == level and s["intact"] and s["signature_valid"] and s["trusted"]
        assert s["signer_subject"] == "CN=signkit Test Signer RSA-2048,O=signkit test PKI,C=VN"
        assert s["revocation"] == "good" and s["weak_algorithms"] == []
        assert s["claimed_signing_time"]
        if level == "B-B":
            assert s["timestamp_time"] is None and s["coverage"] == "entire-file"
            assert s["modification_level"] == "none"
        else:
            assert s["timestamp_time"] and s["best_signature_time"] == s["timestamp_time"]
        if level in ("B-LT", "B-LTA"):
            # the DSS (and the document time-stamp) come after the signed revision
            assert s["coverage"] == "entire-revision" and s["modification_level"] == "lta-updates"
            assert "validation data (DSS) added or updated" in s["changes"]
        entries = doc["verdict"]["signatures"]
        if level == "B-LTA":
            ts = entries[1]
            assert len(entries) == 2 and ts["kind"] == "document-timestamp"
            assert ts["indication"] == "PASSED" and ts["trusted"] and ts["intact"]
        else:
            assert len(entries) == 1
    assert "4 passed, 0 indeterminate, 0 failed (of 4)" in proc.stderr
    # one audit record per document, chained, between run-start and run-end
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if r["type"] != "seal"]  # the log's own seals
    assert [r["type"] for r in records] == ["run-start"] + ["verify-result"] * 4 + ["run-end"]
    assert {r["indication"] for r in records if r["type"] == "verify-result"} == {"PASSED"}


def test_offline_uses_embedded_ltv_only(verify: Verify, signed: dict[str, Path]) -> None:
    proc, data = verify(
        str(signed["B-LT"]), str(signed["B-LTA"]), "--offline", "--revocation", "hard"
    )
    assert proc.returncode == 0, proc.stderr
    assert all(sig0(data, n)["revocation"] == "good" for n in (0, 1))
    # B-B carries no revocation data: offline and hard, the status cannot be established
    proc, data = verify(str(signed["B-B"]), "--offline", "--revocation", "hard")
    assert proc.returncode == 6
    assert data["documents"][0]["verdict"]["indication"] == "INDETERMINATE"
    assert sig0(data)["revocation"] == "unknown"
    # soft: reported, verdict unchanged
    proc, data = verify(str(signed["B-B"]), "--offline", "--revocation", "soft")
    assert proc.returncode == 0, proc.stderr
    assert sig0(data)["revocation"] == "unknown" and sig0(data)["warnings"]


def test_untrusted_root_is_indeterminate(
    verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    other = tmp_path / "other-root.der"
    other.write_bytes(pki_certificate("tsa"))  # some certificate, not the signer's root
    proc, data = verify(str(signed["B-T"]), "--trust", str(other), trusted=False)
    assert proc.returncode == 6, proc.stderr
    s = sig0(data)
    assert s["indication"] == "INDETERMINATE" and not s["trusted"]
    assert s["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"
    # and with no --trust at all: nothing is trusted, said up front
    proc, data = verify(str(signed["B-T"]), trusted=False)
    assert proc.returncode == 6 and "no trust anchors" in proc.stderr
    # the OS store, asked for explicitly, does not hold the test root either
    proc, data = verify(str(signed["B-T"]), "--trust-system", trusted=False)
    assert proc.returncode == 6 and "no trust anchors" not in proc.stderr
    assert sig0(data)["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"


def _referee_valid(path: Path) -> bool | None:
    """pdfsig's judgement of the signature maths (it has no trust store of ours)."""
    text = pdfsig(path)
    if "Signature is Valid" in text:
        return True
    if "Digest Mismatch" in text or "Signature is Invalid" in text:
        return False
    return None


@pytest.mark.parametrize(
    ("tamper", "sub"),
    [
        (flip_signed_byte, "HASH_FAILURE"),
        (add_page, "MODIFIED_AFTER_SIGNING"),
        (replace_content, "MODIFIED_AFTER_SIGNING"),
    ],
)
def test_tampering_fails(
    verify: Verify, signed: dict[str, Path], tmp_path: Path, tamper: Any, sub: str
) -> None:
    bad = tamper(signed["B-T"], tmp_path / "bad.pdf")
    proc, data = verify(str(bad))
    assert proc.returncode == 1, proc.stderr
    s = sig0(data)
    assert s["indication"] == "FAILED"
    assert s["sub_indication"] == sub
    if tamper is flip_signed_byte:
        assert s["intact"] is False
        assert _referee_valid(bad) is False  # pdfsig agrees: digest mismatch
    if tamper in (add_page, replace_content):
        assert s["intact"] is True and s["modification_level"] == "other"
        assert s["coverage"] == "entire-revision"


def test_replaced_certificate_is_not_the_signing_certificate(
    verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    """The signed ESS signing-certificate attribute names the original certificate:
    EN 319 102-1 gives INDETERMINATE/NO_SIGNING_CERTIFICATE_FOUND (never PASSED)."""
    bad = replace_certificate(signed["B-T"], tmp_path / "swapped.pdf")
    proc, data = verify(str(bad))
    assert proc.returncode == 6, proc.stderr
    s = sig0(data)
    assert s["indication"] == "INDETERMINATE"
    assert s["sub_indication"] == "NO_SIGNING_CERTIFICATE_FOUND"
    assert s["signer_subject"] == "CN=signkit Test Signer No Label,O=signkit test PKI,C=VN"
    assert s["signature_valid"] is False


def test_annotation_added_after_signing(
    verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    """A comment added after an approval signature is a permitted change (ISO
    32000), listed; after a DocMDP 1 certification it is forbidden outright."""
    for name in ("B-B", "certified"):
        commented = add_annotation(signed[name], tmp_path / f"{name}-commented.pdf")
        proc, data = verify(str(commented))
        s = sig0(data)
        assert s["intact"] is True
        assert s["certification_level"] == (1 if name == "certified" else None)
        if name == "B-B":
            assert proc.returncode == 0, proc.stderr
            assert s["indication"] == "PASSED" and s["modification_level"] == "annotations"
            assert "annotation added on page 1 (/Text)" in s["changes"]
        else:
            assert proc.returncode == 1, proc.stderr
            assert s["indication"] == "FAILED" and s["sub_indication"] == "MODIFIED_AFTER_SIGNING"
            assert s["modification_level"] == "other"


def test_removed_signature_leaves_an_unsigned_document(
    verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    stripped = remove_signature(signed["B-B"], tmp_path / "stripped.pdf")
    proc, data = verify(str(stripped))
    assert proc.returncode == 1, proc.stderr
    verdict = data["documents"][0]["verdict"]
    assert verdict["indication"] == "FAILED" and verdict["signatures"] == []
    assert "no signature" in verdict["sentence"]


@pytest.mark.parametrize(
    ("label", "indication", "subs"),
    [
        ("signer-expired", "INDETERMINATE", {"OUT_OF_BOUNDS_NO_POE", "EXPIRED"}),
        ("signer-notyet", "INDETERMINATE", {"NOT_YET_VALID", "OUT_OF_BOUNDS_NO_POE"}),
        ("signer-revoked", "INDETERMINATE", {"REVOKED_NO_POE"}),
    ],
)
def test_unusable_signers(
    verify: Verify, tmp_path: Path, label: str, indication: str, subs: set[str]
) -> None:
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "signed.pdf", label)
    proc, data = verify(str(doc))
    s = sig0(data)
    assert s["indication"] == indication and s["sub_indication"] in subs, s
    assert proc.returncode == 6
    if label == "signer-revoked":
        assert s["revocation"] == "revoked"


def test_revoked_signer_with_timestamp_after_revocation(verify: Verify, tmp_path: Path) -> None:
    """The time-stamp (now) is after the revocation (2025-06-01): EN 319 102-1's process
    with time keeps INDETERMINATE/REVOKED_NO_POE (5.5.4); never PASSED."""
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "signed.pdf", "signer-revoked", timestamp=True)
    proc, data = verify(str(doc))
    s = sig0(data)
    assert s["indication"] == "INDETERMINATE" and s["sub_indication"] == "REVOKED_NO_POE", s
    assert s["revocation"] == "revoked" and s["timestamp_time"] > "2025-06-01"
    assert s["level"] == "B-T"
    assert proc.returncode == 6


def test_at_validates_an_old_signature_as_of_its_time(
    signkit: Runner, verify: Verify, tmp_path: Path
) -> None:
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "old.pdf", "signer-expired")
    proc, data = verify(str(doc), "--at", "2022-06-01T09:00:00+07:00")
    assert proc.returncode == 0, proc.stderr
    s = sig0(data)
    assert s["indication"] == "PASSED"
    assert s["best_signature_time"] == "2022-06-01T09:00:00+07:00"
    bad = signkit("verify", str(doc), "--at", "yesterday", "--no-audit")
    assert bad.returncode == 2 and "error: yesterday: --at must be an ISO 8601 time" in bad.stderr


def test_missing_intermediate_is_fetched_by_aia_unless_offline(
    verify: Verify, tmp_path: Path
) -> None:
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "leaf-only.pdf", "clerk-vn", embed_chain=False)
    proc, data = verify(str(doc))
    assert proc.returncode == 0, proc.stderr
    s = sig0(data)
    assert s["trusted"] and "CN=Ủy ban nhân dân tỉnh Nam Định" in s["signer_subject"]
    proc, data = verify(str(doc), "--offline", "--revocation", "off")
    assert proc.returncode == 6
    assert sig0(data)["sub_indication"] == "NO_CERTIFICATE_CHAIN_FOUND"


def test_sha1_is_weak_unless_explicitly_allowed(verify: Verify, tmp_path: Path) -> None:
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "sha1.pdf", "signer-rsa2048", md="sha1")
    proc, data = verify(str(doc))
    s = sig0(data)
    assert proc.returncode == 6, proc.stderr
    assert s["indication"] == "INDETERMINATE"
    assert s["sub_indication"].startswith("CRYPTO_CONSTRAINTS_FAILURE")
    assert "digest SHA1" in s["weak_algorithms"]
    proc, data = verify(str(doc), "--insecure-allow-weak")
    assert proc.returncode == 0, proc.stderr
    s = sig0(data)
    assert s["indication"] == "PASSED" and "digest SHA1" in s["weak_algorithms"]
    assert any("--insecure-allow-weak" in w for w in s["warnings"])


def test_verdicts_agree_with_pdfsig(
    verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    """Where pdfsig can judge (integrity and signature maths), it agrees with us."""
    cases = {
        "intact": signed["B-T"],
        "flipped": flip_signed_byte(signed["B-B"], tmp_path / "flipped.pdf"),
        "ltv": signed["B-LTA"],
        "certificate": replace_certificate(signed["B-B"], tmp_path / "swapped.pdf"),
    }
    for name, path in cases.items():
        _, data = verify(str(path))
        s = sig0(data)
        ours = bool(s["intact"]) and bool(s["signature_valid"])
        if s["sub_indication"] in ("HASH_FAILURE", "SIG_CRYPTO_FAILURE", "FORMAT_FAILURE"):
            ours = False
        assert _referee_valid(path) is ours, (name, pdfsig(path), s)


def test_extract_revision_gives_what_was_signed(
    signkit: Runner, signed: dict[str, Path], tmp_path: Path
) -> None:
    grown = add_page(signed["B-B"], tmp_path / "grown.pdf")
    out = tmp_path / "as-signed.pdf"
    proc = signkit("verify", str(grown), "--extract-revision", "1", "-o", str(out), "--no-audit")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == signed["B-B"].read_bytes()
    again = signkit("verify", str(grown), "--extract-revision", "1", "-o", str(out), "--no-audit")
    assert again.returncode == 3 and "output exists" in again.stderr
    missing = signkit(
        "verify", str(grown), "--extract-revision", "2", "-o", str(tmp_path / "x.pdf"),
        "--no-audit",
    )  # fmt: skip
    assert missing.returncode == 3 and "no signature 2 (the document has 1)" in missing.stderr
    assert not (tmp_path / "x.pdf").exists()


def test_bad_inputs(
    signkit: Runner, verify: Verify, signed: dict[str, Path], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"this is not a pdf")
    good = shutil.copy(signed["B-B"], tmp_path / "good.pdf")
    proc, data = verify(str(junk), str(good))
    assert proc.returncode == 1
    bad = data["documents"][0]
    assert bad["status"] == "failed" and "not a PDF" in bad["error_message"]
    assert data["documents"][1]["verdict"]["indication"] == "PASSED"
    missing = signkit("verify", str(tmp_path / "nope.pdf"), "--no-audit")
    assert missing.returncode == 3
    assert "error: " in missing.stderr and "no such file or directory" in missing.stderr
    assert "Traceback" not in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = signkit("verify", str(empty), "--no-audit", "--require-input")
    assert proc.returncode == 3 and "no .pdf/.xml/.edxml/.p7s/.p7m files found" in proc.stderr


def test_stale_embedded_revocation_is_judged_at_the_timestamp(
    signed: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three days on, the OCSP answers in the DSS are no longer current (the test OCSP
    responder's nextUpdate is minutes away): B-LT is judged as of its time-stamp.
    The clock is the one thing moved here (pyHanko's "now"), in-process."""
    from datetime import UTC, datetime, timedelta

    from pyhanko_certvalidator.ltv.types import ValidationTimingInfo

    from signkit.jobs.verify_job import quiet_libraries
    from signkit.verify.pdf import verify_pdf
    from signkit.verify.policy import VerifyPolicy

    later = datetime.now(UTC) + timedelta(days=3)
    monkeypatch.setattr(
        ValidationTimingInfo,
        "now",
        classmethod(lambda cls, tz=None: ValidationTimingInfo(later, later, False)),
    )
    quiet_libraries()
    policy = VerifyPolicy(anchors=(pki_certificate("root-ca"),), offline=True, revocation="hard")
    for level in ("B-LT", "B-LTA"):
        verdict = verify_pdf(signed[level], policy)
        assert verdict.indication.value == "PASSED", verdict
        s, *timestamps = verdict.signatures
        assert any("as of the signature time-stamp" in w for w in s.warnings), s.warnings
        assert s.best_signature_time == s.timestamp_time
        # B-LTA's document time-stamp: its TSA's answers are stale too, and nothing
        # later proves it existed: not PASSED, and it does not lower the signature's
        assert [t.kind for t in timestamps] == (["document-timestamp"] if level == "B-LTA" else [])
    # without revocation data there is nothing to judge with, then or now
    b_t = verify_pdf(signed["B-T"], policy)
    assert b_t.indication.value == "INDETERMINATE"


def test_etsi_validation_report(
    signkit: Runner, signed: dict[str, Path], trust: Path, tmp_path: Path
) -> None:
    """--report-format etsi: TS 119 102-2 XML whose statuses are signkit's verdicts."""
    from lxml import etree

    grown = add_page(signed["B-LT"], tmp_path / "grown.pdf")
    report = tmp_path / "report.xml"
    proc = signkit(
        "verify", str(signed["B-T"]), str(grown), "--trust", str(trust),
        "--report", str(report), "--report-format", "etsi", "--no-audit",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    vr = "{http://uri.etsi.org/19102/v1.2.1#}"
    root = etree.parse(str(report)).getroot()
    assert root.tag == f"{vr}ValidationReport"
    statuses = [
        (s.findtext(f"{vr}MainIndication"), s.findtext(f"{vr}SubIndication"))
        for s in root.iter(f"{vr}SignatureValidationStatus")
    ]
    assert statuses == [
        ("urn:etsi:019102:mainindication:total-passed", None),
        (
            "urn:etsi:019102:mainindication:total-failed",
            "urn:signkit:subindication:MODIFIED_AFTER_SIGNING",
        ),
    ]
    assert root.find(f"{vr}SignatureValidationObjects") is not None
    usage = signkit("verify", str(grown), "--report-format", "etsi", "--no-audit")
    assert usage.returncode == 2 and "--report-format etsi writes the --report FILE" in usage.stderr


def test_rsa_1024_is_weak_unless_explicitly_allowed(signkit: Runner, tmp_path: Path) -> None:
    from support.verifydocs import sign_with_files, throwaway_pki

    ca, leaf, key = throwaway_pki(tmp_path / "pki", leaf_bits=1024)
    doc = sign_with_files(sample(tmp_path), tmp_path / "rsa1024.pdf", key, leaf, ca)
    base = ["verify", str(doc), "--trust", str(ca), "--revocation", "off", "--json", "--no-audit"]
    proc = signkit(*base)
    assert proc.returncode == 6, proc.stderr
    s = sig0(json.loads(proc.stdout))
    assert s["indication"] == "INDETERMINATE"
    assert s["sub_indication"].startswith("CRYPTO_CONSTRAINTS_FAILURE"), s
    assert s["weak_algorithms"] == ["RSA-1024 key"]
    proc = signkit(*base, "--insecure-allow-weak")
    assert proc.returncode == 0, proc.stderr
    s = sig0(json.loads(proc.stdout))
    assert s["indication"] == "PASSED" and s["weak_algorithms"] == ["RSA-1024 key"]


def test_batch_options(
    signkit: Runner, signed: dict[str, Path], trust: Path, tmp_path: Path
) -> None:
    """--dry-run verifies nothing, --manifest names documents, --fail-fast stops, and
    contradictory or missing options are usage/config errors with one line each."""
    docs = tmp_path / "docs"
    docs.mkdir()
    bad = flip_signed_byte(signed["B-B"], docs / "a-bad.pdf")
    for n in range(3):
        shutil.copy(signed["B-B"], docs / f"b-good{n}.pdf")
    dry = signkit("verify", str(docs), "--dry-run", "--json", "--no-audit")
    assert dry.returncode == 0, dry.stderr
    data = json.loads(dry.stdout)
    assert data["dry_run"] and {d["status"] for d in data["documents"]} == {"planned"}
    listed = signkit("verify", str(docs), "--dry-run", "--no-audit")
    assert "dry run: 4 document(s) would be verified" in listed.stdout
    manifest = tmp_path / "batch.csv"
    manifest.write_text("input\ndocs/b-good0.pdf\ndocs/b-good1.pdf\n")
    proc = signkit("verify", "--manifest", str(manifest), "--trust", str(trust), "--no-audit")
    assert proc.returncode == 0 and "2 passed, 0 indeterminate, 0 failed (of 2)" in proc.stdout
    fast = signkit(
        "verify", str(docs), "--trust", str(trust), "--fail-fast", "--jobs", "1", "--json",
        "--no-audit",
    )  # fmt: skip
    assert fast.returncode == 1
    statuses = [d["status"] for d in json.loads(fast.stdout)["documents"]]
    assert statuses == ["verified"] + ["not-attempted"] * 3, statuses
    assert json.loads(fast.stdout)["documents"][0]["input"].endswith("a-bad.pdf")
    assert "3 not attempted (of 4)" in fast.stderr  # beside --json, the counts on stderr
    usage = signkit("verify", str(bad), "-o", str(tmp_path / "x.pdf"), "--no-audit")
    assert usage.returncode == 2 and "-o/--output goes with --extract-revision" in usage.stderr
    missing = signkit("verify", str(bad), "--trust", str(tmp_path / "nope.pem"), "--no-audit")
    assert missing.returncode == 5 and "trust anchor path does not exist" in missing.stderr
    for proc in (usage, missing):
        assert len([x for x in proc.stderr.splitlines() if x.startswith("error:")]) == 1
        assert "Traceback" not in proc.stderr


def test_without_difference_analysis_an_updated_document_never_passes(
    signed: dict[str, Path], tmp_path: Path
) -> None:
    """Library use may switch the analysis off (the CLI cannot): an update after signing
    then leaves the verdict INDETERMINATE, never PASSED."""
    from signkit.jobs.verify_job import quiet_libraries
    from signkit.verify.pdf import verify_pdf
    from signkit.verify.policy import VerifyPolicy

    quiet_libraries()
    grown = add_page(signed["B-B"], tmp_path / "grown.pdf")
    anchors = (pki_certificate("root-ca"),)
    judged = verify_pdf(grown, VerifyPolicy(anchors=anchors))
    blind = verify_pdf(grown, VerifyPolicy(anchors=anchors, diff_analysis=False))
    assert judged.sub_indication.value == "MODIFIED_AFTER_SIGNING"
    assert (blind.indication.value, blind.sub_indication.value) == (
        "INDETERMINATE",
        "SIG_CONSTRAINTS_FAILURE",
    )
    untouched = verify_pdf(signed["B-B"], VerifyPolicy(anchors=anchors, diff_analysis=False))
    assert untouched.indication.value == "PASSED"  # nothing after the signature to judge


def test_two_signers_each_judged(
    sk, verify: Verify, signed: dict[str, Path], tmp_path: Path, trust: Path
) -> None:  # type: ignore[no-untyped-def]
    """A second signature (another token, a Vietnamese signer) after a B-T one: the first
    sees a new signature as form filling, the second covers the whole file; pdfsig agrees."""
    twice = tmp_path / "twice.pdf"
    proc = sk(
        str(signed["B-T"]), "-o", str(twice), "--token-label", "signkit-test-b",
        "--key-label", "leader-vn", "--trust", str(trust),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc, data = verify(str(twice))
    assert proc.returncode == 0, proc.stderr
    first, second = data["documents"][0]["verdict"]["signatures"]
    assert (first["level"], first["coverage"], first["modification_level"]) == (
        "B-T",
        "entire-revision",
        "form-filling",
    )
    assert (second["level"], second["coverage"], second["modification_level"]) == (
        "B-B",
        "entire-file",
        "none",
    )
    assert "CN=Trần Thị Bình" in second["signer_subject"]
    assert pdfsig(twice).count("Signature is Valid") == 2
