"""Session fixtures: SoftHSM and openCryptoki tokens, the live PKI services, a signkit runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.fonts import LIBERATION, LIBERATION_ITALIC, font_root
from support.infra import (
    REPO,
    InfraError,
    OpenCryptoki,
    PkiServices,
    SoftHsm,
    TokenImpl,
    build_opencryptoki,
    build_softhsm,
)
from support.p11shim import Shim, build_shim
from support.runner import Runner

IMPLEMENTATIONS = ("softhsm", "opencryptoki")
# parallel test workers (see pytest_sessionstart below)
PKI_KEY = "signkit_pki_failure"
PKI_STASH = pytest.StashKey[PkiServices]()
PKI_FAILURE = pytest.StashKey[str]()


@pytest.fixture(scope="session", autouse=True)
def only_liberation_serif(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every signkit the tests start finds Liberation Serif (and its italic) and
    no other serif font, whatever the host has installed (SIGNKIT_FONT_ROOT)."""
    root = font_root(
        tmp_path_factory.mktemp("fonts"),
        {LIBERATION: LIBERATION, LIBERATION_ITALIC: LIBERATION_ITALIC},
    )
    before = os.environ.get("SIGNKIT_FONT_ROOT")
    os.environ["SIGNKIT_FONT_ROOT"] = str(root)
    yield root
    if before is None:
        del os.environ["SIGNKIT_FONT_ROOT"]
    else:
        os.environ["SIGNKIT_FONT_ROOT"] = before


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """All test tokens, in a private directory; SOFTHSM2_CONF set for this process."""
    hsm = build_softhsm(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(hsm.conf)
    return hsm


@pytest.fixture(scope="session")
def opencryptoki() -> Iterator[OpenCryptoki]:
    """openCryptoki's soft tokens behind pkcsslotd, rebuilt and held for this session."""
    ock = build_opencryptoki()
    try:
        yield ock
    finally:
        ock.close()


@pytest.fixture(params=IMPLEMENTATIONS)
def tokens(request: pytest.FixtureRequest) -> TokenImpl:
    """The layout's tokens on each PKCS#11 implementation in turn (the token matrix)."""
    impl: TokenImpl = request.getfixturevalue(request.param)
    return impl


@pytest.fixture
def signkit_on(tokens: TokenImpl, state_dir: Path, softhsm: SoftHsm) -> Runner:
    """Run `signkit …` against ``tokens`` (SoftHSM stays configured: modules coexist)."""
    return Runner(tokens, state_dir)


@pytest.fixture(scope="session")
def p11shim(softhsm: SoftHsm, tmp_path_factory: pytest.TempPathFactory) -> Shim:
    """The test PKCS#11 module (tests/support/p11shim.c) in front of SoftHSM."""
    return Shim(build_shim(tmp_path_factory.mktemp("p11shim")), softhsm.module)


@pytest.fixture(scope="session")
def pki(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PkiServices]:
    """The certomancer services on 127.0.0.1:9781 for the whole session.

    A test worker (pytest-xdist) uses the services its controller started:
    the certificates name that one port, so the workers cannot each have theirs.
    """
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is not None and PKI_KEY in workerinput:
        failure = workerinput[PKI_KEY]
        if failure:
            raise InfraError(f"the test run could not start the PKI services: {failure}")
        yield PkiServices().attach("the test run started the PKI services")
        return
    services = PkiServices(log=tmp_path_factory.mktemp("pki") / "animate.log").start()
    try:
        yield services
    finally:
        services.stop()


# ------------------------------------------------------------ parallel test workers
# `./dev test` runs the suite on pytest-xdist workers (pyproject's addopts).
# What is one per machine is kept one per run:
# - the PKI services listen on the port their certificates name: the controller
#   starts them once and every worker uses them (the `pki` fixture);
# - a test file runs on one worker (--dist=loadfile), with its module fixtures
#   and fixed ports;
# - openCryptoki's tokens are the machine's, and a session holds them to its
#   end: the tests that use them live in one file (checked at collection), so
#   no worker waits for another's session to end, which would never come.


def uses_opencryptoki(item: pytest.Item) -> bool:
    """True when ``item`` needs openCryptoki's tokens, directly or through the matrix."""
    if "opencryptoki" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("tokens") == "opencryptoki"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller of parallel workers starts the PKI services for all of them."""
    config = session.config
    if config.pluginmanager.getplugin("dsession") is None:
        return
    try:
        config.stash[PKI_STASH] = PkiServices().start()
        config.stash[PKI_FAILURE] = ""
    except InfraError as exc:  # each test that needs the PKI fails with the reason
        config.stash[PKI_FAILURE] = str(exc)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each worker that the controller runs the PKI services (or why not)."""
    failure = node.config.stash.get(PKI_FAILURE, None)
    if failure is not None:
        node.workerinput[PKI_KEY] = failure


def pytest_unconfigure(config: pytest.Config) -> None:
    services = config.stash.get(PKI_STASH, None)
    if services is not None:
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``only(impl, why)`` must use that implementation's fixture, not the matrix.

    The tests that use openCryptoki's tokens must live in one file (see above).
    """
    ock_files = sorted(
        {str(item.path.relative_to(REPO)) for item in items if uses_opencryptoki(item)}
    )
    if len(ock_files) > 1:
        raise pytest.UsageError(
            f"tests in {', '.join(ock_files)} use the openCryptoki tokens: keep them in one "
            "file, or parallel workers would wait for each other's sessions to end"
        )
    for item in items:
        marker = item.get_closest_marker("only")
        if marker is None:
            continue
        impl, why = marker.args
        names = getattr(item, "fixturenames", ())
        if impl not in IMPLEMENTATIONS or not why or impl not in names or "tokens" in names:
            raise pytest.UsageError(
                f"{item.nodeid}: only({impl!r}, why) needs the {impl!r} fixture, "
                "a reason, and no 'tokens' fixture"
            )


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # An expected failure is reported as skipped; xfail is strict (pyproject),
    # so one that starts passing fails the run instead.
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: nothing that needs a service may skip."""
    if _skipped and os.environ.get("CI"):
        print(f"\nCI: {len(_skipped)} skipped test(s) count as failures: {_skipped[:5]}")
        session.exitstatus = 1
