"""The clerk's terminal in Vietnamese: the PIN prompt, and a library's own
English message kept out of a Vietnamese sentence unless -v asks for it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.infra import REPO, SoftHsm, batch_of, pki_certificate
from support.runner import Runner
from support.terminal import on_terminal

PROMPT = "Mã PIN của thiết bị ký số 'signkit-demo' (số sê-ri "


@pytest.mark.softhsm
def test_pin_prompt_is_vietnamese(signkit: Runner, softhsm: SoftHsm) -> None:
    session = on_terminal(
        [sys.executable, "-m", "signkit", "token", "login", "--module", softhsm.module,
         "--token-label", "signkit-demo"],
        env=signkit.env({"LANG": "vi_VN.UTF-8"}),
        cwd=REPO,
        replies=[(PROMPT, softhsm.user_pin)],
    )  # fmt: skip
    assert session.prompts == 1, session.transcript
    assert session.returncode == 0, session.transcript
    assert "PIN for" not in session.transcript
    assert "mã PIN được chấp nhận" in session.transcript, session.transcript


def test_library_message_only_with_verbose(signkit: Runner, tmp_path: Path) -> None:
    broken = tmp_path / "hỏng.pdf"
    broken.write_bytes(b"%PDF-1.7\nnot really a PDF")
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    args = ("verify", str(broken), "--no-audit", "--trust", str(trust))
    env = {"LANG": "vi_VN.UTF-8"}
    plain = signkit(*args, env=env)
    assert plain.returncode == 1, plain.stderr
    # the verdict (UNREADABLE and why) is what was asked for: on stdout
    assert "PDF bị lỗi cấu trúc" in plain.stdout, plain.stdout
    assert "Could not read" not in plain.stdout + plain.stderr, plain.stdout
    verbose = signkit(*args, "-v", env=env)
    assert "PDF bị lỗi cấu trúc (Could not read malformed PDF file)" in verbose.stdout
    english = signkit(*args)
    assert "malformed PDF (Could not read malformed PDF file)" in english.stdout


@pytest.mark.softhsm
def test_progress_bars_are_vietnamese(signkit: Runner, softhsm: SoftHsm, tmp_path: Path) -> None:
    """What a clerk watches while a batch runs: the bar's label is Vietnamese
    (a transient bar still draws once before it is erased)."""
    src = batch_of(tmp_path / "in", 2)
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    env = signkit.env({"LANG": "vi_VN.UTF-8", "SIGNKIT_MODULE": softhsm.module})
    argv = [sys.executable, "-m", "signkit", "sign", "pdf", str(src), "--no-audit"]
    argv += ["--output-dir", str(tmp_path / "out"), "--trust", str(trust)]
    argv += ["--token-label", "signkit-test-b", "--key-label", "signer-rsa3072"]
    signing = on_terminal(
        argv, env=env, cwd=REPO, replies=[("Mã PIN của thiết bị ký số", softhsm.user_pin)]
    )
    assert signing.returncode == 0, signing.transcript
    assert "đang ký" in signing.transcript and "signing" not in signing.transcript
    checking = on_terminal(
        [sys.executable, "-m", "signkit", "verify", str(tmp_path / "out"), "--no-audit",
         "--trust", str(trust)],
        env=env,
        cwd=REPO,
    )  # fmt: skip
    assert checking.returncode == 0, checking.transcript
    assert "đang kiểm tra" in checking.transcript and "verifying" not in checking.transcript
