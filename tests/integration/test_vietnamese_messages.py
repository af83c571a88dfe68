"""Messages in Vietnamese (--lang vi or a vi_* locale) for each exit code; JSON stays English."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from signkit.i18n import Catalogue
from support.infra import FIXTURES
from support.messages import catalogue_entries

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
RSA = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
VI = {"LANG": "vi_VN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
CATALOGUE = Catalogue(catalogue_entries("vi"))


def vi(text: str) -> str:
    translated = CATALOGUE.translate(text)
    assert translated != text, f"no translation for {text!r}"
    return translated


def test_exit_0_summary_in_vietnamese(sk, tmp_path: Path, trust: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "a.pdf"
    proc = sk(str(SAMPLES / "attachment.pdf"), *RSA, "-o", str(out), "--trust", str(trust), env=VI)
    assert proc.returncode == 0, proc.stderr
    line = vi(
        "{signed} signed, {skipped} skipped, {failed} failed, "
        "{not_attempted} not attempted (of {total})"
    ).format(signed=1, skipped=0, failed=0, not_attempted=0, total=1)
    assert line in proc.stderr


def test_exit_1_failed_document_reason_in_vietnamese_json_in_english(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "letter.pdf").write_text("Dear clerk, this is not a PDF.")
    proc = sk(str(tmp_path / "in"), *RSA, "--output-dir", str(tmp_path / "out"), "--json", env=VI)
    assert proc.returncode == 1, proc.stderr
    assert vi("not a PDF (no %PDF- header)") in proc.stderr
    assert vi("failed") in proc.stderr
    report = json.loads(proc.stdout)
    assert report["documents"][0]["status"] == "failed"  # JSON keys and values stay English
    assert "not a PDF" in report["documents"][0]["error_message"]


def test_exit_2_usage_error(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *RSA,
        "-o",
        str(tmp_path / "o.pdf"),
        "--level",
        "B-T",
        env=VI,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"{vi('error')}: {vi('B-T and higher levels need --tsa URL')}")


def test_exit_3_input_error(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk("--manifest", str(tmp_path / "nothing.csv"), *RSA, env=VI)
    assert proc.returncode == 3, proc.stderr
    assert f"{vi('error')}: {tmp_path / 'nothing.csv'}: {vi('manifest not found')}" in proc.stderr


def test_exit_4_token_error_with_the_lang_option(signkit, softhsm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = signkit(
        "--lang",
        "vi",
        "sign",
        "pdf",
        str(SAMPLES / "attachment.pdf"),
        "-o",
        str(tmp_path / "o.pdf"),
        "--module",
        softhsm.module,
        "--token-label",
        "no-such-token",
        env={"SIGNKIT_PIN": softhsm.user_pin, "LANG": "en_US.UTF-8"},
    )
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith(vi("error") + ": ")
    assert vi("plug the token in, or check `signkit token list`") in proc.stderr
    # the tokens present, SoftHSM's spare slot included, all named in Vietnamese
    assert "thiết bị ký số 'signkit-demo' (số sê-ri " in proc.stderr, proc.stderr
    assert "thiết bị ký số chưa khởi tạo (khe " in proc.stderr, proc.stderr
    assert "serial" not in proc.stderr and "token ''" not in proc.stderr, proc.stderr


def test_exit_5_trust_error(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "roots.pem"
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *RSA,
        "-o",
        str(tmp_path / "o.pdf"),
        "--trust",
        str(missing),
        env=VI,
    )
    assert proc.returncode == 5, proc.stderr
    assert f"{missing}: {vi('trust anchor path does not exist')}" in proc.stderr


def test_english_by_default(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *RSA,
        "-o",
        str(tmp_path / "o.pdf"),
        "--level",
        "B-T",
        env={"LANG": "C.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: B-T and higher levels need --tsa URL")


def test_exit_6_indeterminate_verdict_in_vietnamese(sk, signkit, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    signed = tmp_path / "signed.pdf"
    assert sk(str(SAMPLES / "attachment.pdf"), *RSA, "-o", str(signed)).returncode == 0
    # no trust anchor given: the chain cannot be anchored
    proc = signkit("verify", str(signed), "--revocation", "off", "--no-audit", env=VI)
    assert proc.returncode == 6, proc.stderr
    assert "INDETERMINATE" in proc.stdout  # the verdicts: stdout
    english = json.loads(
        signkit("verify", str(signed), "--revocation", "off", "--no-audit", "--json").stdout
    )["documents"][0]["verdict"]["signatures"][0]["sentence"]
    assert vi(english) in proc.stdout


def test_exit_7_expiring_certificate_in_vietnamese(
    signkit, softhsm, tmp_path: Path, trust: Path
) -> None:  # type: ignore[no-untyped-def]
    proc = signkit(
        "cert",
        "check",
        "--module",
        softhsm.module,
        "--token-label",
        "signkit-test-a",
        "--key-label",
        "signer-rsa2048",
        "--trust",
        str(trust),
        "--revocation",
        "off",
        "--warn-days",
        "100000",
        "--no-audit",
        env=VI,
    )
    assert proc.returncode == 7, proc.stderr
    assert "hết hạn sau" in proc.stdout and "expires in" not in proc.stdout


def test_library_message_and_subject_of_a_chain_error(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Regression: with a root that is not the signer's, a clerk read
    "lỗi: signer certificate '…': không xây dựng được … (Unable to build a
    validation path for the certificate "Common Name: …" …)"; pyHanko's
    English quoted a Vietnamese name, so it was not taken for English."""
    from support.verifydocs import throwaway_pki

    other_root = throwaway_pki(tmp_path / "other", leaf_bits=2048)[0]
    leader = ["--token-label", "signkit-test-b", "--key-label", "leader-vn"]
    args = (str(SAMPLES / "attachment.pdf"), *leader, "-o", str(tmp_path / "o.pdf"))
    proc = sk(*args, "--trust", str(other_root), env=VI)
    assert proc.returncode == 5, proc.stderr
    error = next(line for line in proc.stderr.splitlines() if line.startswith("lỗi: "))
    assert error.startswith("lỗi: chứng thư số của người ký 'CN=Trần Thị Bình,"), error
    assert error.endswith(
        ": không xây dựng được chuỗi chứng thực tới chứng thư gốc tin cậy đã cấu hình"
    )
    assert "Unable to build" not in proc.stderr and "signer certificate" not in proc.stderr
    verbose = sk(*args, "--trust", str(other_root), "-v", env=VI)
    assert verbose.returncode == 5, verbose.stderr
    assert "(Unable to build a validation path for the certificate" in verbose.stderr
    assert not (tmp_path / "o.pdf").exists()
