"""Run the installed signkit in a subprocess, as users and cron do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support.infra import REPO, SoftHsm


class Runner:
    """Runs the installed `signkit` in a subprocess, as users and cron do."""

    def __init__(self, hsm: SoftHsm, state: Path) -> None:
        self.hsm = hsm
        self.state = state

    def env(self, extra: dict[str, str] | None = None, *, rawonly: bool = False) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "SIGNKIT_PIN"}
        env.update(self.hsm.env(rawonly=rawonly))
        env["XDG_STATE_HOME"] = str(self.state)
        env["COLUMNS"] = "200"
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        rawonly: bool = False,
        timeout: float = 120,
        program: list[str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``program`` replaces ``python -m signkit`` (a wrapper from ``wrapped``)."""
        return subprocess.run(
            [*(program or [sys.executable, "-m", "signkit"]), *args],
            capture_output=True,
            text=True,
            env=self.env(env, rawonly=rawonly),
            input=input,
            timeout=timeout,
            cwd=REPO,
            check=False,
        )


def cron_env(hsm: SoftHsm, state: Path) -> dict[str, str]:
    """The environment of a scheduled job: the test token, its PIN, a private state dir."""
    return {
        **os.environ,
        "SOFTHSM2_CONF": str(hsm.conf),
        "SIGNKIT_MODULE": hsm.module,
        "SIGNKIT_PIN": hsm.user_pin,
        "XDG_STATE_HOME": str(state),
    }


def wrapped(directory: Path, code: str, *, name: str = "signkit-wrapped") -> list[str]:
    """argv that runs the real signkit entry point after ``code`` (a fault
    injected at a named boundary) has run in the same process."""
    script = directory / f"{name}.py"
    script.write_text(textwrap.dedent(code) + "\nfrom signkit.cli import main\n\nmain()\n")
    return [sys.executable, str(script)]
