"""Where the PIN comes from, and the rules for presenting it to a token.

A PIN is held in a ``Pin`` whose repr is masked, so it cannot leak through a
log line, an error message or a traceback's locals. It is never retried:
exactly one C_Login per run, because tokens lock after a few wrong tries.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from signkit.errors import (
    InputError,
    PinFinalTryError,
    PinIncorrectError,
    PinLengthError,
    PinLockedError,
    PinUnavailableError,
    UnattendedGuardError,
)
from signkit.tokens.guard import PinGuard, os_user
from signkit.tokens.model import TokenFlags, TokenInfo
from signkit.tokens.secret import PIN_ENV, Pin, take_env_pin

__all__ = ["PIN_ENV", "Pin", "take_env_pin"]


class PinSourceKind(StrEnum):
    """Where the PIN is read from."""

    PROMPT = "prompt"
    ENV = "env"
    FILE = "file"
    STDIN = "stdin"
    PINPAD = "pinpad"

    @property
    def unattended(self) -> bool:
        """True when no person types the PIN for this run."""
        return self in (PinSourceKind.ENV, PinSourceKind.FILE, PinSourceKind.STDIN)


@dataclass(frozen=True, kw_only=True)
class PinSpec:
    """How the user asked for the PIN to be obtained."""

    kind: PinSourceKind | None = None
    """Explicit source, or None to choose: env, PIN pad, prompt."""
    file: Path | None = None
    """File holding the PIN (with ``kind=FILE``)."""
    env_pin: Pin | None = None
    """The value of SIGNKIT_PIN, captured (and removed from the environment) at start-up."""


class PinIO(Protocol):
    """What the login needs from the person at the terminal (if any)."""

    def interactive(self) -> bool:
        """True when a person can answer a prompt."""

    def prompt_pin(self, prompt: str) -> str:
        """Ask for the PIN without echo."""

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question."""

    def read_stdin_pin(self) -> str:
        """Read one line from standard input."""


def read_pin_file(path: Path, warn: Callable[[str], None]) -> Pin:
    """Read a PIN file (first line, line ending stripped)."""
    try:
        st = path.stat()
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError("PIN file not found", subject=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read PIN file ({type(exc).__name__})", subject=str(path)) from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warn(f"{path}: PIN file is readable by other users; chmod 600 it")
    value = raw.splitlines()[0] if raw else ""
    return Pin(value)


def choose_source(spec: PinSpec, token: TokenInfo, io: PinIO) -> PinSourceKind:
    """Pick the PIN source when the user did not name one."""
    if spec.kind is not None:
        return spec.kind
    if spec.env_pin is not None:
        return PinSourceKind.ENV
    if token.flags.protected_auth_path:
        return PinSourceKind.PINPAD
    if io.interactive():
        return PinSourceKind.PROMPT
    raise PinUnavailableError(
        "no PIN source: not on a terminal and no PIN given",
        subject=token.display_name(),
        hint=f"set {PIN_ENV}, or pass --pin-file FILE or --pin-stdin",
    )


def remaining_tries_note(flags: TokenFlags) -> str:
    """What the token says about the remaining PIN tries, for messages."""
    if flags.user_pin_locked:
        return "the token now reports the PIN LOCKED"
    if flags.user_pin_final_try:
        return "the token reports ONE try left before it locks"
    if flags.user_pin_count_low:
        return "the token reports few tries left"
    return "the token reports no lock warning"


def check_pin_length(pin: Pin, token: TokenInfo) -> None:
    """Refuse a PIN outside the token's ulMinPinLen..ulMaxPinLen before C_Login:
    tokens count such a PIN as a wrong try. (The message gives the token's
    limits, never the PIN's own length.)"""
    size = len(pin.reveal().encode("utf-8"))
    low, high = token.pin_min, token.pin_max
    hint = "check the PIN source (a stray character in the PIN file or variable?)"
    if low is not None and size < low:
        raise PinLengthError(
            f"the PIN is shorter than the {low} characters the token needs: "
            "not sent to the token (no try used)",
            subject=token.display_name(),
            hint=hint,
        )
    if high is not None and size > high:
        raise PinLengthError(
            f"the PIN is longer than the {high} characters the token accepts: "
            "not sent to the token (no try used)",
            subject=token.display_name(),
            hint=hint,
        )


@dataclass(frozen=True, kw_only=True)
class LoginResult:
    """The outcome of the one login of a run."""

    source: PinSourceKind
    """Where the PIN came from."""
    pin: Pin | None
    """Kept only for keys that need a context-specific login per signature."""


def login(
    *,
    token: TokenInfo,
    spec: PinSpec,
    io: PinIO,
    guard: PinGuard,
    do_login: Callable[[Pin | None], None],
    refresh_flags: Callable[[], TokenFlags],
    warn: Callable[[str], None],
    keep_pin: bool,
) -> LoginResult:
    """Log in once, applying every PIN-safety rule.

    ``do_login`` performs exactly one C_Login (``None`` = protected path) and
    raises PinIncorrectError/PinLockedError; it is never called twice.
    """
    name = token.display_name()
    flags = token.flags
    if flags.user_pin_locked:
        raise PinLockedError(
            "the token reports its user PIN locked; no login attempted",
            subject=name,
            hint="unlock it with the SO PIN or the vendor's tool",
        )
    source = choose_source(spec, token, io)
    if source.unattended:
        blocked = guard.check(token)
        if blocked is not None:
            user, select, where = os_user(), guard.selection(token), guard.directory
            raise UnattendedGuardError(
                f"unattended logins on this token are blocked since {blocked.blocked_at} "
                f"for user {user}, after a rejected PIN ({blocked.source})",
                subject=name,
                hint=f"after fixing the PIN source, as user {user} log in once at a terminal "
                f"(`signkit token login {select}`) or run `signkit token clear-guard {select}` "
                f"(the block is kept in {where})",
            )
    if flags.user_pin_final_try:
        if source.unattended or not io.interactive():
            raise PinFinalTryError(
                "the token reports one PIN try left; refusing an unattended login",
                subject=name,
                hint="log in interactively to confirm, or unlock the PIN with the vendor's tool",
            )
        if not io.confirm(f"{name}: ONE PIN try left before the token locks. Continue?"):
            raise PinFinalTryError("login cancelled at the final-try warning", subject=name)
    elif flags.user_pin_count_low:
        warn(f"{name}: the token reports few PIN tries left")

    pin: Pin | None
    if source is PinSourceKind.PINPAD:
        if not flags.protected_auth_path:
            raise PinUnavailableError(
                "this token has no PIN pad (protected authentication path)", subject=name
            )
        pin = None
    elif source is PinSourceKind.ENV:
        if spec.env_pin is None:
            raise PinUnavailableError(f"{PIN_ENV} is not set", subject=name)
        pin = spec.env_pin
    elif source is PinSourceKind.FILE:
        if spec.file is None:
            raise PinUnavailableError("no PIN file given", subject=name)
        pin = read_pin_file(spec.file, warn)
    elif source is PinSourceKind.STDIN:
        pin = Pin(io.read_stdin_pin())
    else:
        pin = Pin(io.prompt_pin(f"PIN for {name}: "))

    if pin is not None:
        check_pin_length(pin, token)
    try:
        do_login(pin)
    except PinIncorrectError as exc:
        try:
            note = remaining_tries_note(refresh_flags())
        except Exception:  # the flags are advisory; never mask the real error
            note = "the token's remaining tries are unknown"
        if source.unattended:
            # Said the first time, not only when the next scheduled run is refused.
            guard.block(token, source=source.value)
            user, select, where = os_user(), guard.selection(token), guard.directory
            raise PinIncorrectError(
                f"PIN rejected by the token ({note}); unattended logins on this token are now "
                f"blocked for user {user}, so that scheduled runs cannot use up its tries",
                subject=name,
                hint=f"signkit never retries a PIN: check the PIN source, then as user {user} "
                f"log in once at a terminal (`signkit token login {select}`) or run "
                f"`signkit token clear-guard {select}` (the block is kept in {where})",
            ) from exc
        raise PinIncorrectError(
            f"PIN rejected by the token ({note})",
            subject=name,
            hint="signkit never retries a PIN: check it and run again",
        ) from exc
    if source in (PinSourceKind.PROMPT, PinSourceKind.PINPAD):
        guard.clear(token)
    return LoginResult(source=source, pin=pin if keep_pin else None)
