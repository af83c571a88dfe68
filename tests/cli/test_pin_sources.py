"""The PIN rules on a real token: SoftHSM, pkcs11-spy counting C_Login, the
interactive prompt on a real pseudo-terminal, the guard in the state directory.

What SoftHSM cannot do (report "final try" or "locked", have a PIN pad) stays
in tests/unit/test_pin_policy.py, with the flags handed in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from support.infra import REPO, SoftHsm, batch_of, pki_certificate, spy_calls, spy_module
from support.pdfcheck import pdfsig
from support.runner import Runner
from support.terminal import Session, on_terminal

pytestmark = pytest.mark.softhsm

WRONG = "271828"
TOKEN = ["--token-label", "signkit-demo"]
PROMPT = "PIN for token 'signkit-demo' (serial "


def spy(softhsm: SoftHsm, log: Path) -> dict[str, str]:
    return {"PKCS11SPY": softhsm.module, "PKCS11SPY_OUTPUT": str(log)}


def user_logins(log: Path) -> int:
    if not log.exists():
        return 0
    return sum(1 for name, block in spy_calls(log) if name == "C_Login" and "CKU_USER" in block)


def guard_files(state: Path) -> list[Path]:
    return sorted((state / "signkit" / "pin-guard").glob("*.json"))


def login_at_terminal(signkit: Runner, softhsm: SoftHsm, log: Path, typed: str) -> Session:
    """`signkit token login` on a pty, a person typing ``typed`` at the prompt."""
    return on_terminal(
        [sys.executable, "-m", "signkit", "token", "login", "--module", spy_module(), *TOKEN],
        env=signkit.env(spy(softhsm, log)),
        cwd=REPO,
        replies=[(PROMPT, typed)],
    )


def unattended(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, source: str, pin: str, log: Path, *cmd: str
):
    """``cmd`` with the PIN from the environment, a file or stdin, through the spy."""
    pin_file = tmp_path / f"pin-{pin}"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    args = {"env": [], "file": ["--pin-file", str(pin_file)], "stdin": ["--pin-stdin"]}[source]
    env = {"SIGNKIT_PIN": pin} if source == "env" else {}
    return signkit(
        *cmd,
        "--module",
        spy_module(),
        *TOKEN,
        *args,
        env={**env, **spy(softhsm, log)},
        input=pin + "\n" if source == "stdin" else None,
    )


@pytest.mark.parametrize("source", ["env", "file", "stdin"])
def test_a_wrong_unattended_pin_is_tried_once_then_guarded_until_a_person_logs_in(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, state_dir: Path, source: str
) -> None:
    src = batch_of(tmp_path / "in", 3)
    sign = ("sign", "pdf", str(src), "--output-dir", str(tmp_path / "out"), "--revocation", "off")
    sign = (*sign, "--no-audit")
    # 1. a scheduled batch with a wrong PIN: one C_Login, refused, guard set
    first = unattended(signkit, softhsm, tmp_path, source, WRONG, tmp_path / "1.log", *sign)
    assert first.returncode == 4, first.stderr
    assert "PIN rejected" in first.stderr and "never retries" in first.stderr
    assert "unattended logins on this token are now blocked" in first.stderr
    assert user_logins(tmp_path / "1.log") == 1
    (guard,) = guard_files(state_dir)
    assert json.loads(guard.read_text())["source"] == source
    assert WRONG not in guard.read_text() + first.stderr + first.stdout
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # 2. the next scheduled run, with the right PIN, never reaches the token
    second = unattended(
        signkit, softhsm, tmp_path, source, softhsm.user_pin, tmp_path / "2.log", *sign
    )
    assert second.returncode == 4 and "blocked since" in second.stderr
    assert "clear-guard" in second.stderr
    assert user_logins(tmp_path / "2.log") == 0
    # 3. a person logs in at the terminal: one C_Login, the guard is lifted
    person = login_at_terminal(signkit, softhsm, tmp_path / "3.log", softhsm.user_pin)
    assert person.prompts == 1 and person.returncode == 0, person.transcript
    assert "PIN accepted (prompt)" in person.transcript
    assert user_logins(tmp_path / "3.log") == 1 and guard_files(state_dir) == []
    # 4. the scheduled batch runs again, with one login
    fourth = unattended(
        signkit, softhsm, tmp_path, source, softhsm.user_pin, tmp_path / "4.log", *sign
    )
    assert fourth.returncode == 0, fourth.stderr
    assert user_logins(tmp_path / "4.log") == 1
    for out in sorted((tmp_path / "out").glob("*.pdf")):
        assert pdfsig(out).count("Signature is Valid") == 1


def test_the_prompt_is_on_the_terminal_and_never_echoes_the_pin(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    session = login_at_terminal(signkit, softhsm, tmp_path / "spy.log", softhsm.user_pin)
    assert session.returncode == 0, session.transcript
    assert session.prompts == 1
    assert session.transcript.count("PIN for token") == 1
    assert softhsm.user_pin not in session.transcript  # echo was off while it was typed
    assert user_logins(tmp_path / "spy.log") == 1


def test_a_wrong_pin_at_the_prompt_is_tried_once_and_does_not_block(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, state_dir: Path
) -> None:
    session = login_at_terminal(signkit, softhsm, tmp_path / "spy.log", WRONG)
    assert session.returncode == 4, session.transcript
    assert "PIN rejected" in session.transcript and WRONG not in session.transcript
    assert "blocked" not in session.transcript
    assert user_logins(tmp_path / "spy.log") == 1 and guard_files(state_dir) == []


def test_one_prompt_for_a_whole_batch_even_with_a_login_per_signature(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, pki: object
) -> None:
    """An always-authenticate key on a terminal: one prompt for five documents,
    then one context-specific login per signature from that one PIN."""
    src = batch_of(tmp_path / "in", 5)
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    log = tmp_path / "spy.log"
    argv = [sys.executable, "-m", "signkit", "sign", "pdf", str(src), "--output-dir"]
    argv += [str(tmp_path / "out"), "--module", spy_module(), "--no-audit", "--trust", str(trust)]
    argv += ["--token-label", "signkit-test-b", "--key-label", "signer-rsa3072"]
    session = on_terminal(
        argv,
        env=signkit.env(spy(softhsm, log)),
        cwd=REPO,
        replies=[("PIN for token 'signkit-test-b' (serial ", softhsm.user_pin)],
    )
    assert session.returncode == 0, session.transcript
    assert session.transcript.count("PIN for token") == 1
    assert softhsm.user_pin not in session.transcript
    assert "5 signed, 0 skipped, 0 failed, 0 not attempted (of 5)" in session.transcript
    logins = [block for name, block in spy_calls(log) if name == "C_Login"]
    assert sum("CKU_USER" in b for b in logins) == 1
    assert sum("CKU_CONTEXT_SPECIFIC" in b for b in logins) == 5


def test_a_pin_file_readable_by_others_works_with_a_warning(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.user_pin + "\r\nsecond line ignored\n")
    pin_file.chmod(0o644)
    log = tmp_path / "spy.log"
    proc = signkit(
        "token",
        "login",
        "--module",
        spy_module(),
        *TOKEN,
        "--pin-file",
        str(pin_file),
        env=spy(softhsm, log),
    )
    assert proc.returncode == 0, proc.stderr
    assert "PIN file is readable by other users; chmod 600 it" in proc.stderr
    assert "PIN accepted (file)" in proc.stderr and user_logins(log) == 1
