"""Session fixtures: a private SoftHSM, the live PKI services, a signkit runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.infra import REPO, PkiServices, SoftHsm, build_softhsm


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """All test tokens, in a private directory; SOFTHSM2_CONF set for this process."""
    hsm = build_softhsm(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    return hsm


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PkiServices]:
    """The certomancer services on 127.0.0.1:9781 for the whole session."""
    services = PkiServices(log=tmp_path_factory.mktemp("pki") / "animate.log").start()
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private XDG state directory (PIN guard, audit log) per test."""
    path = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(path))
    return path


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


@pytest.fixture
def signkit(softhsm: SoftHsm, state_dir: Path) -> Runner:
    """Run `signkit …` against the test tokens with a private state directory."""
    return Runner(softhsm, state_dir)


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing that needs a service may skip."""
    if _skipped and os.environ.get("CI"):
        print(f"\nCI: {len(_skipped)} skipped test(s) count as failures: {_skipped[:5]}")
        session.exitstatus = 1
