"""Real test infrastructure: SoftHSM and openCryptoki tokens, the certomancer PKI services.

Nothing here skips: when a token implementation or the PKI cannot be started
the fixture fails with the reason, so CI can never pass on tests that did not run.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Protocol

REPO = Path(__file__).resolve().parents[2]


def _private_fixtures() -> Path:
    """A copy of fixtures/ for this test process, removed when it exits.

    signkit locks each input while it signs it, so two tests signing one
    committed sample at once (on two parallel workers) would find it held.
    """
    root = Path(tempfile.mkdtemp(prefix="signkit-test-fixtures-"))
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:  # not in a forked child that exits
            shutil.rmtree(root, ignore_errors=True)

    atexit.register(remove)
    copy = root / "fixtures"
    shutil.copytree(REPO / "fixtures", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


FIXTURES = _private_fixtures()
PKI_CONFIG = REPO / "fixtures" / "pki" / "certomancer.yml"
PKI_ARCH = "signkit-test"
PKI_PORT = 9781
PKI_BASE = f"http://127.0.0.1:{PKI_PORT}/{PKI_ARCH}"
OCSP_URL = f"{PKI_BASE}/ocsp/interm-ca"
TSA_URL = f"{PKI_BASE}/tsa/tsa"
CRL_INTERM_URL = f"{PKI_BASE}/crls/interm-ca/latest.crl"
SPY_MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/pkcs11-spy.so",
    "/usr/lib/pkcs11/pkcs11-spy.so",
)


class InfraError(RuntimeError):
    """Test infrastructure could not be brought up."""


def load_init_tokens() -> ModuleType:
    """softhsm/init_tokens.py as a module (its layout parser is the source of truth)."""
    spec = importlib.util.spec_from_file_location(
        "init_tokens", REPO / "softhsm" / "init_tokens.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["init_tokens"] = module
    spec.loader.exec_module(module)
    return module


class TokenImpl(Protocol):
    """One PKCS#11 implementation holding the tokens of softhsm/layout.toml."""

    @property
    def name(self) -> str:
        """'softhsm' or 'opencryptoki' (also the test id)."""

    @property
    def module(self) -> str:
        """Path of its PKCS#11 module."""

    @property
    def user_pin(self) -> str:
        """The user PIN of every token."""

    def env(self, *, rawonly: bool = False) -> dict[str, str]:
        """Environment a process needs to see these tokens."""


@dataclass(frozen=True)
class SoftHsm:
    """A private SoftHSM token directory built from softhsm/layout.toml."""

    directory: Path
    conf: Path
    rawonly_conf: Path
    module: str
    user_pin: str
    so_pin: str
    name: str = "softhsm"

    def env(self, *, rawonly: bool = False) -> dict[str, str]:
        """Environment variables that point SoftHSM at this directory."""
        return {"SOFTHSM2_CONF": str(self.rawonly_conf if rawonly else self.conf)}


@dataclass(frozen=True)
class OpenCryptoki:
    """openCryptoki's soft tokens (testtokens/opencryptoki.py), behind pkcsslotd.

    The tokens are machine-wide: a test session holds ``lock`` from building
    them to its end, so concurrent sessions take turns instead of mixing.
    """

    module: str
    user_pin: str
    so_pin: str
    lock: IO[bytes]
    name: str = "opencryptoki"

    def env(self, *, rawonly: bool = False) -> dict[str, str]:
        """Nothing: openCryptoki's configuration is the machine's."""
        if rawonly:
            raise InfraError("the raw-only configuration exists for SoftHSM only")
        return {}

    def reset_pin(self, label: str) -> None:
        """Unlock ``label``'s user PIN with the SO PIN and clear its failure count."""
        _run_ock("reset-pin", label)

    def close(self) -> None:
        """Let the next test session have the tokens."""
        self.lock.close()


def load_ock_script() -> ModuleType:
    """testtokens/opencryptoki.py as a module (its slot plan is the source of truth)."""
    spec = importlib.util.spec_from_file_location(
        "ock_testtokens", REPO / "testtokens" / "opencryptoki.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ock_testtokens"] = module
    spec.loader.exec_module(module)
    return module


def _run_ock(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(REPO / "testtokens" / "opencryptoki.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InfraError(
            f"testtokens/opencryptoki.py {args[0]} failed:\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def build_opencryptoki() -> OpenCryptoki:
    """Take the machine's openCryptoki test tokens for this session and rebuild them."""
    ock = load_ock_script()
    try:
        ock.check()
    except ock.SetupError as exc:
        raise InfraError(f"openCryptoki is not ready: {exc}") from exc
    lock = ock.SESSION_LOCK.open("ab")
    try:
        os.chmod(ock.SESSION_LOCK, 0o666)  # noqa: S103 - every test user takes turns on it
    except OSError:
        pass  # another user's file: it is already shared
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(
            f"\nwaiting for another test session to release the openCryptoki test tokens "
            f"({ock.SESSION_LOCK})",
            file=sys.stderr,
        )
        fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        _run_ock("tokens")
    except BaseException:
        lock.close()
        raise
    layout = load_init_tokens().load_layout()
    return OpenCryptoki(
        module=ock.find_module(), user_pin=layout.user_pin, so_pin=ock.DEFAULT_SO_PIN, lock=lock
    )


def build_softhsm(directory: Path) -> SoftHsm:
    """Run the loader script into ``directory``; fail loudly."""
    if shutil.which("softhsm2-util") is None:
        raise InfraError("softhsm2-util not found: install the Debian package softhsm2")
    proc = subprocess.run(
        [sys.executable, str(REPO / "softhsm" / "init_tokens.py"), "--dir", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InfraError(f"SoftHSM token setup failed:\n{proc.stdout}\n{proc.stderr}")
    init_tokens = load_init_tokens()
    layout = init_tokens.load_layout()
    return SoftHsm(
        directory=directory,
        conf=directory / "softhsm2.conf",
        rawonly_conf=directory / "softhsm2-rawonly.conf",
        module=init_tokens.find_module(None),
        user_pin=layout.user_pin,
        so_pin=layout.so_pin,
    )


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PkiServices:
    """`certomancer animate` serving OCSP, CRLs, AIA and the TSA on loopback."""

    def __init__(self, port: int = PKI_PORT, log: Path | None = None) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> PkiServices:
        """Start and wait until the CRL endpoint answers; a busy port is an error.

        Developers running several suites at once may start one `certomancer
        animate` themselves and set SIGNKIT_TEST_PKI_SHARED=1: the suites then
        use it (it must answer) instead of each needing the port.
        """
        if os.environ.get("SIGNKIT_TEST_PKI_SHARED") == "1" and not os.environ.get("CI"):
            return self.attach("SIGNKIT_TEST_PKI_SHARED=1")
        if port_in_use(self.port):
            raise InfraError(
                f"port {self.port} on 127.0.0.1 is busy: the test PKI's certificates name "
                f"http://127.0.0.1:{self.port}, so the services must listen there; stop "
                "whatever holds the port (e.g. a leftover `certomancer animate`)"
            )
        certomancer = shutil.which("certomancer", path=os.path.dirname(sys.executable))
        cmd = [certomancer] if certomancer else [sys.executable, "-m", "certomancer"]
        cmd += ["--config", str(PKI_CONFIG), "animate", "--port", str(self.port), "--no-web-ui"]
        out = self.log.open("wb") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/{PKI_ARCH}/crls/interm-ca/latest.crl"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise InfraError(f"certomancer animate exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise InfraError(f"certomancer animate did not answer on port {self.port}")

    def attach(self, why: str) -> PkiServices:
        """Use services another process started (``why`` names it); they must answer.

        The test workers of one run share the services their controller started
        (tests/conftest.py): the certificates name one port.
        """
        url = f"http://127.0.0.1:{self.port}/{PKI_ARCH}/crls/interm-ca/latest.crl"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return self
                raise InfraError(f"{why} but the test PKI answered {resp.status}")
        except OSError as exc:
            raise InfraError(f"{why} but no test PKI answers on port {self.port}") from exc

    def stop(self) -> None:
        """Stop the services."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def spy_module() -> str:
    """OpenSC's pkcs11-spy module, which logs every PKCS#11 call."""
    for path in SPY_MODULE_CANDIDATES:
        if os.path.exists(path):
            return path
    raise InfraError("pkcs11-spy.so not found: install the Debian package opensc")


def spy_calls(log: Path) -> list[tuple[str, str]]:
    """(function name, whole block) for each call in a pkcs11-spy log."""
    calls: list[tuple[str, str]] = []
    current: list[str] = []
    name = ""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        head = line.split(": ", 1)
        if len(head) == 2 and head[0].isdigit() and head[1].startswith("C_"):
            if name:
                calls.append((name, "\n".join(current)))
            name, current = head[1].split()[0], [line]
        elif name:
            current.append(line)
    if name:
        calls.append((name, "\n".join(current)))
    return calls


@functools.cache
def _pki_arch() -> Any:
    from certomancer.registry import CertomancerConfig

    return CertomancerConfig.from_file(str(PKI_CONFIG)).get_pki_arch(PKI_ARCH)


@functools.cache
def pki_certificate(label: str) -> bytes:
    """DER of one certificate of the test PKI (certomancer's Python API)."""
    return bytes(_pki_arch().get_cert(label).dump())


def batch_of(directory: Path, count: int, *, prefix: str = "d") -> Path:
    """``directory`` holding ``count`` copies of the attachment sample (a batch to sign)."""
    directory.mkdir(parents=True, exist_ok=True)
    sample = REPO / "fixtures" / "samples" / "attachment.pdf"
    for i in range(count):
        shutil.copy(sample, directory / f"{prefix}{i:03d}.pdf")
    return directory
