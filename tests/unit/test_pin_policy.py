"""The login rules for what SoftHSM cannot do, at the token-layer seam.

SoftHSM never reports "final try", "locked" or "count low" and has no PIN
pad, so these tests hand the policy a TokenInfo with those flags set and a
stand-in for C_Login that counts its calls. Everything SoftHSM can do (a
wrong PIN, the guard, PIN files, stdin, the prompt on a terminal) is tested
on SoftHSM itself in tests/cli/test_pin_sources.py.
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest

from signkit.errors import (
    PinFinalTryError,
    PinIncorrectError,
    PinLockedError,
    PinUnavailableError,
)
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import TokenFlags, TokenInfo
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec, login, take_env_pin

FLAGS = TokenFlags(
    login_required=True,
    protected_auth_path=False,
    user_pin_count_low=False,
    user_pin_final_try=False,
    user_pin_locked=False,
    user_pin_to_be_changed=False,
    initialized=True,
    write_protected=False,
)
TOKEN = TokenInfo(
    module="/x.so",
    slot_id=1,
    slot_description="reader",
    label="tok",
    manufacturer="m",
    model="mod",
    serial="0042",
    flags=FLAGS,
)
SECRET = "271828"


class IO:
    def __init__(self, *, interactive: bool, answer: bool = False, typed: str = SECRET) -> None:
        self._interactive = interactive
        self.answer = answer
        self.typed = typed
        self.prompts = 0
        self.questions: list[str] = []

    def interactive(self) -> bool:
        return self._interactive

    def prompt_pin(self, prompt: str) -> str:
        self.prompts += 1
        return self.typed

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def read_stdin_pin(self) -> str:
        return SECRET


class Token:
    """Counts C_Login calls; rejects any PIN but ``good``."""

    def __init__(self, good: str = SECRET, after: TokenFlags = FLAGS) -> None:
        self.calls: list[str | None] = []
        self.good = good
        self.after = after

    def do_login(self, pin: Pin | None) -> None:
        self.calls.append(None if pin is None else pin.reveal())
        if pin is not None and pin.reveal() != self.good:
            raise PinIncorrectError("PIN rejected by the token")

    def flags(self) -> TokenFlags:
        return self.after


def run(token: Token, *, info: TokenInfo = TOKEN, spec: PinSpec, io: IO, guard: PinGuard):  # type: ignore[no-untyped-def]
    warnings: list[str] = []
    result = login(
        token=info,
        spec=spec,
        io=io,
        guard=guard,
        do_login=token.do_login,
        refresh_flags=token.flags,
        warn=warnings.append,
        keep_pin=True,
    )
    return result, warnings


def env_spec(value: str = SECRET) -> PinSpec:
    return PinSpec(env_pin=Pin(value))


def test_locked_token_is_never_logged_into(tmp_path: Path) -> None:
    token = Token()
    info = replace(TOKEN, flags=replace(FLAGS, user_pin_locked=True))
    for io in (IO(interactive=True, answer=True), IO(interactive=False)):
        with pytest.raises(PinLockedError):
            run(token, info=info, spec=env_spec(), io=io, guard=PinGuard(tmp_path))
    assert token.calls == []


def test_final_try_unattended_is_refused(tmp_path: Path) -> None:
    token = Token()
    info = replace(TOKEN, flags=replace(FLAGS, user_pin_final_try=True))
    with pytest.raises(PinFinalTryError, match="unattended"):
        run(token, info=info, spec=env_spec(), io=IO(interactive=True), guard=PinGuard(tmp_path))
    assert token.calls == []


def test_final_try_interactive_asks_first(tmp_path: Path) -> None:
    info = replace(TOKEN, flags=replace(FLAGS, user_pin_final_try=True))
    declined = Token()
    io = IO(interactive=True, answer=False)
    with pytest.raises(PinFinalTryError, match="cancelled"):
        run(declined, info=info, spec=PinSpec(), io=io, guard=PinGuard(tmp_path))
    assert declined.calls == [] and io.prompts == 0 and "ONE PIN try" in io.questions[0]
    accepted = Token()
    io = IO(interactive=True, answer=True)
    result, _ = run(accepted, info=info, spec=PinSpec(), io=io, guard=PinGuard(tmp_path))
    assert accepted.calls == [SECRET] and result.source is PinSourceKind.PROMPT


def test_count_low_warns(tmp_path: Path) -> None:
    info = replace(TOKEN, flags=replace(FLAGS, user_pin_count_low=True))
    _, warnings = run(
        Token(), info=info, spec=env_spec(), io=IO(interactive=False), guard=PinGuard(tmp_path)
    )
    assert any("few PIN tries" in w for w in warnings)


def test_the_tries_left_after_a_wrong_pin_are_said(tmp_path: Path) -> None:
    """The token's flags read after the refusal (SoftHSM never sets "count low")."""
    guard = PinGuard(tmp_path)
    token = Token(after=replace(FLAGS, user_pin_count_low=True))
    with pytest.raises(PinIncorrectError) as err:
        run(token, spec=env_spec("000000"), io=IO(interactive=False), guard=guard)
    assert token.calls == ["000000"]
    assert "few tries left" in str(err.value) and "blocked" in str(err.value)
    assert "000000" not in str(err.value) and "000000" not in repr(err.value.__cause__)


def test_pin_pad_passes_no_pin(tmp_path: Path) -> None:
    info = replace(TOKEN, flags=replace(FLAGS, protected_auth_path=True))
    token = Token()
    result, _ = run(
        token, info=info, spec=PinSpec(), io=IO(interactive=False), guard=PinGuard(tmp_path)
    )
    assert token.calls == [None] and result.source is PinSourceKind.PINPAD
    with pytest.raises(PinUnavailableError, match="no PIN pad"):
        run(
            Token(),
            spec=PinSpec(kind=PinSourceKind.PINPAD),
            io=IO(interactive=False),
            guard=PinGuard(tmp_path),
        )


def test_pin_object_never_shows_its_value() -> None:
    pin = Pin(SECRET)
    assert SECRET not in repr(pin) and SECRET not in str(pin) and SECRET not in f"{pin}"
    with pytest.raises(TypeError):
        pickle.dumps(pin)
    with pytest.raises(PinUnavailableError):
        Pin("")


def test_env_pin_is_removed_from_the_environment() -> None:
    env = {"SIGNKIT_PIN": SECRET, "PATH": "/bin"}
    pin = take_env_pin(env)
    assert pin is not None and pin.reveal() == SECRET and "SIGNKIT_PIN" not in env


def test_unreadable_guard_file_still_blocks(tmp_path: Path) -> None:
    guard = PinGuard(tmp_path)
    guard.block(TOKEN, source="env")
    path = next(guard.directory.glob("*.json"))
    path.write_text("{garbage")
    assert guard.check(TOKEN) is not None
    assert guard.clear(TOKEN) and guard.check(TOKEN) is None
