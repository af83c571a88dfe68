"""`signkit cert check` for monitoring: Nagios status lines (errors included),
--crit-days and perfdata thresholds, Prometheus textfile metrics read by the
official client's parser, and days counted as people count them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from support.infra import PkiServices, SoftHsm, pki_certificate
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

HANOI = "Asia/Ho_Chi_Minh"


def check(signkit: Runner, softhsm: SoftHsm, *args: str):  # type: ignore[no-untyped-def]
    env = {"SIGNKIT_MODULE": softhsm.module, "TZ": HANOI}
    return signkit("cert", "check", *args, "--no-audit", env=env)


def self_signed(path: Path, not_before: datetime, not_after: datetime) -> Path:
    """A certificate valid from ``not_before`` to ``not_after``, its own anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Văn thư Sở Nội vụ")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def at(moment: datetime) -> str:
    return moment.isoformat()


# A certificate issued at 09:41:07 Hanoi time for 10 days.
ISSUED = datetime(2026, 3, 12, 2, 41, 7, tzinfo=UTC)
ENDS = ISSUED + timedelta(days=10)


@pytest.mark.parametrize(
    ("now", "days", "phrase"),
    [
        # a second after it was made: 10 days, not 9 (the whole days of a timedelta)
        (ISSUED + timedelta(seconds=1), 10, "expires in 10 days (on 2026-03-22T09:41:07+07:00)"),
        # the evening before its last day (Hanoi): 1 day, not 0
        (ENDS - timedelta(hours=23), 1, "expires in 1 day (on 2026-03-22T09:41:07+07:00)"),
        # its last morning: today, and at what time
        (ENDS - timedelta(hours=1), 0, "expires today (at 2026-03-22T09:41:07+07:00)"),
    ],
)
def test_days_are_counted_as_people_count_them(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, now: datetime, days: int, phrase: str
) -> None:
    pem = self_signed(tmp_path / "c.pem", ISSUED, ENDS)
    args = ["--file", str(pem), "--trust", str(pem), "--revocation", "off", "--at", at(now)]
    proc = check(signkit, softhsm, *args, "--json")
    assert proc.returncode == 7, proc.stderr
    (cert,) = json.loads(proc.stdout)["certificates"]
    assert cert["days_left"] == days and cert["state"] == "expiring"
    assert cert["not_after"] == "2026-03-22T02:41:07+00:00"
    line = check(signkit, softhsm, *args).stdout
    assert line.startswith("EXPIRING: CN=Văn thư Sở Nội vụ (serial ")
    assert "until 2026-03-22T09:41:07+07:00" in line and f"): {phrase}; " in line
    plugin = check(signkit, softhsm, *args, "--nagios")
    assert f"min_days_left={days};30:;7:" in plugin.stdout
    assert phrase in plugin.stdout


def test_crit_days_and_perfdata_thresholds(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path
) -> None:
    when = "2030-06-01T12:00:00+07:00"
    sel = ["--token-label", "signkit-test-a", "--key-id", "02", "--trust", str(trust)]
    sel += ["--at", when, "--revocation", "off"]  # the OCSP answers of today say nothing of 2030
    ends = x509.load_der_x509_certificate(pki_certificate("signer-vn")).not_valid_after_utc
    days = (ends.astimezone(ZoneInfo(HANOI)).date() - datetime.fromisoformat(when).date()).days
    assert 1000 < days < 4000
    warning = check(signkit, softhsm, *sel, "--warn-days", "5000", "--crit-days", "10", "--nagios")
    assert warning.returncode == 1 and warning.stdout.startswith("SIGNKIT CERT WARNING - ")
    critical = check(
        signkit, softhsm, *sel, "--warn-days", "5000", "--crit-days", "4000", "--nagios"
    )
    assert critical.returncode == 2 and critical.stdout.startswith("SIGNKIT CERT CRITICAL - ")
    (status,) = critical.stdout.splitlines()
    assert status.endswith(f" |certs=1 min_days_left={days};5000:;4000:")
    # outside --nagios the exit code stays "expiring" (7), and so does the state
    plain = check(signkit, softhsm, *sel, "--warn-days", "5000", "--crit-days", "4000", "--json")
    (cert,) = json.loads(plain.stdout)["certificates"]
    assert plain.returncode == 7 and cert["state"] == "expiring" and cert["severity"] == "critical"
    assert cert["days_left"] == days
    bad = check(signkit, softhsm, *sel, "--warn-days", "5", "--crit-days", "10")
    assert bad.returncode == 2 and "--crit-days (10) is more than --warn-days (5)" in bad.stderr


def test_nagios_always_answers_one_line_unknown_on_errors(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    """No output or exit 4 reads as a broken plugin to Nagios: every failure
    of the check itself is one UNKNOWN line and exit 3; the error is also on
    stderr for the log."""
    cases = [
        (["--token-label", "not-plugged-in"], "no token matches"),
        (["--file", str(tmp_path / "gone.pem")], "gone.pem: no such file"),
        (["--file", str(tmp_path / "gone.pem"), "--warn-days", "soon"], "usage: "),
        (["--token-label", "signkit-test-a", "--trust", "no-such-bundle"], "no-such-bundle"),
    ]
    for args, reason in cases:
        for form in (["--nagios"], ["--format", "nagios"], ["--format=nagios"]):
            proc = check(signkit, softhsm, *args, *form)
            assert proc.returncode == 3, (args, form, proc.stdout, proc.stderr)
            (line,) = proc.stdout.splitlines()
            assert line.startswith("SIGNKIT CERT UNKNOWN - ") and reason in line, line
            assert "|" not in line.split(" - ", 1)[1]
            assert proc.stderr.strip(), "the error is also said on stderr"
    # without --nagios the same error keeps its own exit code and prints nothing on stdout
    plain = check(signkit, softhsm, "--token-label", "not-plugged-in")
    assert plain.returncode == 4 and plain.stdout == ""


def test_prometheus_textfile_metrics(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    collector = tmp_path / "textfile"
    collector.mkdir()
    target = collector / "signkit.prom"
    target.write_text("stale\n")
    before = set(os.listdir(collector))
    proc = check(
        signkit, softhsm, "--token-label", "signkit-test-c", "--trust", str(trust),
        "--format", "prometheus", "-o", str(target),
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr  # the token holds expired and revoked ones
    assert proc.stdout == "" and set(os.listdir(collector)) == before  # replaced, no temp left
    assert target.stat().st_mode & 0o044 == 0o044  # the collector runs as another user
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert {f.type for f in families.values()} == {"gauge"}
    status = {s.labels["subject"]: s for s in families["signkit_cert_status"].samples}
    assert len(status) == 5
    by_state = {s.labels["state"]: int(s.value) for s in status.values()}
    assert by_state == {
        "ok": 0, "expired": 2, "not-yet-valid": 2, "revoked": 2, "no-signing-usage": 2,
    }  # fmt: skip
    days = {s.labels["sha256"]: s.value for s in families["signkit_cert_days_left"].samples}
    ends = {s.labels["sha256"]: s.value for s in families["signkit_cert_not_after_seconds"].samples}
    expired = next(s for s in status.values() if s.labels["state"] == "expired")
    sha = expired.labels["sha256"]
    assert ends[sha] == datetime(2023, 1, 1, tzinfo=UTC).timestamp() and days[sha] < 0
    assert families["signkit_cert_check_success"].samples[0].value == 1
    # the labels name the certificate as the JSON does
    listed = check(
        signkit, softhsm, "--token-label", "signkit-test-c", "--trust", str(trust), "--json"
    )
    assert {c["sha256"] for c in json.loads(listed.stdout)["certificates"]} == set(days)

    # a failed check replaces the file too: no stale values, success 0, the error as usual
    gone = check(
        signkit, softhsm, "--token-label", "not-plugged-in", "--format", "prometheus",
        "-o", str(target),
    )  # fmt: skip
    assert gone.returncode == 4 and "no token matches" in gone.stderr
    families = {f.name: f for f in text_string_to_metric_families(target.read_text())}
    assert set(families) == {"signkit_cert_check_success", "signkit_cert_check_timestamp_seconds"}
    assert families["signkit_cert_check_success"].samples[0].value == 0


def test_reasons_are_cut_between_words(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    pem = tmp_path / "staff.der"
    pem.write_bytes(pki_certificate("signer-rsa3072"))
    proc = check(signkit, softhsm, "--file", str(pem), "--trust", str(trust), "--offline", "--json")
    (cert,) = json.loads(proc.stdout)["certificates"]
    detail = cert["chain_detail"]
    reason = cert["problems"][0]
    assert reason.startswith("chain: NO_CERTIFICATE_CHAIN_FOUND (") and reason.endswith(")")
    shown = reason[len("chain: NO_CERTIFICATE_CHAIN_FOUND (") : -1]
    if len(detail) > len(shown):
        assert shown.endswith(" …")
        kept = shown[: -len(" …")]
        assert detail.startswith(kept) and detail[len(kept)] == " ", (kept, detail)
    else:
        assert shown == detail
    assert len(detail) > 160, "the validator's message is long enough to be shortened"
