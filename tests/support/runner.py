"""Run the installed signkit in a subprocess, as users and cron do."""

from __future__ import annotations

import os
import subprocess
import sys
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
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "signkit", *args],
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
