"""Session fixtures: a private SoftHSM, the live PKI services, a signkit runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.infra import PkiServices, SoftHsm, build_softhsm
from support.runner import Runner


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
