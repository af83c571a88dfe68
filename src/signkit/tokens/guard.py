"""The unattended-login guard.

When a PIN from the environment, a file or stdin is rejected, the token's
identity is recorded here so that a scheduled job cannot burn the token's
remaining tries one run at a time. Only a person (an interactive login or
an explicit command) clears it. The PIN itself is never stored.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from signkit.tokens.model import TokenInfo


@dataclass(frozen=True, kw_only=True)
class GuardRecord:
    """Why and when unattended logins were blocked on a token."""

    token_label: str
    """Label of the token."""
    token_serial: str
    """Serial of the token."""
    blocked_at: str
    """ISO 8601 time of the rejected PIN."""
    source: str
    """The PIN source that was rejected (env, file, stdin)."""


def default_state_dir() -> Path:
    """$XDG_STATE_HOME/signkit, else ~/.local/state/signkit."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "signkit"


def os_user() -> str:
    """The name of the account this process runs as."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (a container's arbitrary uid)
        return f"uid {os.getuid()}"


class PinGuard:
    """File-backed record of tokens on which unattended logins are blocked.

    It lives in the state directory of the account that runs signkit: a
    block set by one user's scheduled job stops that user's unattended runs,
    not another account's (each has its own guard)."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "pin-guard"

    @staticmethod
    def selection(token: TokenInfo) -> str:
        """The option that names ``token`` in the commands that lift a block."""
        import shlex

        return f"--token-label {shlex.quote(token.label)}"

    def _path(self, token: TokenInfo) -> Path:
        # Not the serial alone (openCryptoki's soft tokens all say "123"): see
        # TokenInfo.identity.
        return self.directory / (token.identity_key() + ".json")

    def check(self, token: TokenInfo) -> GuardRecord | None:
        """The block on ``token``, if any."""
        try:
            data = json.loads(self._path(token).read_text(encoding="utf-8"))
            return GuardRecord(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            # An unreadable guard file must still block: fail safe.
            return GuardRecord(
                token_label=token.label,
                token_serial=token.serial,
                blocked_at="unknown",
                source="unreadable guard file",
            )

    def block(self, token: TokenInfo, *, source: str) -> None:
        """Record a rejected unattended PIN for ``token``."""
        record = {
            "token_label": token.label,
            "token_serial": token.serial,
            "blocked_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": source,
        }
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".guard-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(token))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def clear(self, token: TokenInfo) -> bool:
        """Lift the block on ``token``; True if there was one."""
        try:
            self._path(token).unlink()
        except FileNotFoundError:
            return False
        return True
