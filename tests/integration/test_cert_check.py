"""`signkit cert check`: token certificates (no login), files, documents; live OCSP/CRL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.infra import PkiServices, SoftHsm, pki_certificate
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]


def check(signkit: Runner, softhsm: SoftHsm, *args: str):  # type: ignore[no-untyped-def]
    """`signkit cert check` in Hanoi's time zone (times are shown in the local zone)."""
    env = {"SIGNKIT_MODULE": softhsm.module, "TZ": "Asia/Ho_Chi_Minh"}
    return signkit("cert", "check", *args, "--no-audit", env=env)


@pytest.mark.parametrize(
    ("label", "state", "code", "nagios", "text"),
    [
        ("signer-rsa2048", "ok", 0, 0, "SIGNKIT CERT OK - 1 certificate(s) ok"),
        ("signer-expired", "expired", 5, 2, "expired on 2023-01-01T07:00:00+07:00"),
        ("signer-notyet", "not-yet-valid", 5, 2, "not valid before 2040-01-01T07:00:00+07:00"),
        ("signer-revoked", "revoked", 5, 2, "revoked since"),
        ("signer-nousage", "no-signing-usage", 5, 2, "does not allow signing"),
    ],
)
def test_each_certificate_state(
    signkit: Runner,
    softhsm: SoftHsm,
    pki: PkiServices,
    trust: Path,
    label: str,
    state: str,
    code: int,
    nagios: int,
    text: str,
) -> None:
    token = "signkit-test-a" if label == "signer-rsa2048" else "signkit-test-c"
    sel = ["--token-label", token, "--key-label", label, "--trust", str(trust)]
    proc = check(signkit, softhsm, *sel, "--json")
    assert proc.returncode == code, proc.stderr
    data = json.loads(proc.stdout)
    (cert,) = data["certificates"]
    assert cert["state"] == state and data["exit_code"] == code
    assert cert["source"].startswith(f"key '{label}' on token '{token}'")
    human = check(signkit, softhsm, *sel)
    assert human.returncode == code, human.stderr
    (line,) = human.stdout.splitlines()  # the result on stdout, one line (cron mail)
    assert line.startswith(state.upper() + ":")
    if state != "ok":
        assert text in line
    if state == "revoked":
        assert cert["revocation"] == "revoked" and cert["revocation_source"].startswith("OCSP")
    if state == "ok":
        assert cert["chain"] == "trusted" and cert["revocation"] == "good"
        assert cert["revocation_source"] == "OCSP (fetched)"
        assert cert["algorithm"] == "RSA" and cert["key_size"] == 2048
        assert cert["key_usage"] == ["digital_signature", "non_repudiation"]
    plugin = check(signkit, softhsm, *sel, "--nagios")
    assert plugin.returncode == nagios, plugin.stderr
    (status,) = plugin.stdout.splitlines()
    assert status.startswith("SIGNKIT CERT ") and " |certs=1 min_days_left=" in status
    assert status.endswith(";30:;7:")  # the warn and crit thresholds as alert-below ranges
    assert text in status


def test_vietnamese_subject_and_warn_days(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path
) -> None:
    sel = ["--token-label", "signkit-test-a", "--key-id", "02", "--trust", str(trust)]
    proc = check(signkit, softhsm, *sel)
    assert proc.returncode == 0, proc.stderr
    assert (
        "OK: UID=MST:0100000000-999,CN=Nguyễn Văn An,O=Ủy ban nhân dân tỉnh Nam Định,"
        "L=Nam Định,C=VN" in proc.stdout
    )
    # the certificate runs to 2035: a horizon beyond that makes it "expiring" (exit 7)
    proc = check(signkit, softhsm, *sel, "--warn-days", "5000")
    assert proc.returncode == 7 and proc.stdout.startswith("EXPIRING: UID=MST:")
    plugin = check(signkit, softhsm, *sel, "--warn-days", "5000", "--nagios")
    assert plugin.returncode == 1
    assert plugin.stdout.startswith(
        "SIGNKIT CERT WARNING - UID=MST:0100000000-999,CN=Nguyễn Văn An"
    )


def test_whole_token_one_line_per_certificate(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path
) -> None:
    proc = check(signkit, softhsm, "--token-label", "signkit-test-c", "--trust", str(trust))
    assert proc.returncode == 5
    lines = proc.stdout.splitlines()
    assert len(lines) == 5 and proc.stderr == ""  # five certificates, nothing else (cron mail)
    assert sorted(x.split(":")[0] for x in lines) == [
        "EXPIRED", "NO-SIGNING-USAGE", "NOT-YET-VALID", "OK", "REVOKED",
    ]  # fmt: skip


def test_files_untrusted_and_offline(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    pem = tmp_path / "staff.pem"
    import base64

    der = pki_certificate("signer-rsa3072")
    pem.write_text(
        "-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(der).decode()
        + "-----END CERTIFICATE-----\n"
    )
    proc = check(signkit, softhsm, "--file", str(pem), "--json")
    # no --trust and no root in the file: the one rule `sign` follows too (not
    # validated, said in a warning), not a verdict of untrusted
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["certificates"][0]
    assert status["state"] == "ok" and status["chain"] == "not validated (no --trust)"
    assert "no trust anchors configured (--trust) and no root supplied by the file" in proc.stderr
    proc = check(signkit, softhsm, "--file", str(pem), "--trust", str(trust), "--offline")
    # offline the intermediate cannot be fetched (not in the file): untrusted again
    assert proc.returncode == 5 and proc.stdout.startswith("UNTRUSTED")
    missing = check(signkit, softhsm, "--file", str(tmp_path / "nope.pem"))
    assert missing.returncode == 3 and "nope.pem: no such file" in missing.stderr


def test_document_signers_and_audit(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    from support.verifydocs import pyhanko_sign, sample

    doc = pyhanko_sign(sample(tmp_path), tmp_path / "signed.pdf", "leader-vn")
    audit = tmp_path / "audit.jsonl"
    proc = signkit(
        "cert", "check", "--document", str(doc), "--trust", str(trust), "--audit-log", str(audit),
        "--json", env={"SIGNKIT_MODULE": softhsm.module},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (cert,) = json.loads(proc.stdout)["certificates"]
    assert cert["source"] == f"signature 1 of {doc}" and "CN=Trần Thị Bình" in cert["subject"]
    assert cert["chain"] == "trusted" and cert["revocation"] == "good"
    (record,) = [r for r in map(json.loads, audit.read_text().splitlines()) if r["type"] != "seal"]
    assert record["type"] == "cert-check" and record["certificates"][0]["state"] == "ok"
    unsigned = check(signkit, softhsm, "--document", str(sample(tmp_path / "u")))
    assert unsigned.returncode == 3 and "the document carries no signature" in unsigned.stderr


def test_revoked_certificate_in_vietnamese(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path
) -> None:
    """Regression: the revocation time was cut out of the library's English
    ("đã bị thu hồi từ 00:00:00 on 2025-…"), and -v showed the chain and
    revocation states in English."""
    sel = ["--token-label", "signkit-test-c", "--key-label", "signer-revoked"]
    proc = signkit(
        "cert", "check", *sel, "--trust", str(trust), "--no-audit", "-v",
        env={"SIGNKIT_MODULE": softhsm.module, "LANG": "vi_VN.UTF-8"},
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    seen = proc.stdout + proc.stderr  # what the clerk's terminal shows
    assert re.search(r"đã bị thu hồi từ \d{4}-\d\d-\d\d \d\d:\d\d UTC", seen), seen
    assert " on " not in seen, seen
    assert "thu hồi: đã bị thu hồi (OCSP (tải về))" in seen, seen
    assert "chuỗi: không tin cậy: REVOKED_NO_POE" in seen, seen
    # where the certificate was found: the token and the key, in Vietnamese too
    assert "thiết bị ký số 'signkit-test-c' (số sê-ri " in seen, seen
    assert "khóa 'signer-revoked'" in seen and "serial" not in seen
