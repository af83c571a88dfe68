#!/usr/bin/env python3
"""openCryptoki soft tokens for the signkit tests (the second PKCS#11 implementation).

openCryptoki's software token (``swtok``) lives behind the slot daemon
``pkcsslotd``; its configuration (/etc/opencryptoki/opencryptoki.conf) and its
token stores (/var/lib/opencryptoki/<tokname>) belong to the whole machine.

Usage::

    sudo python3 testtokens/opencryptoki.py daemon
        add the test slots to the configuration (between marker lines, the
        rest of the file is kept), create their stores and (re)start
        pkcsslotd; idempotent: a daemon already serving the slots is left alone
    python3 testtokens/opencryptoki.py check
        exit 1 with the reason unless the daemon serves the test slots and
        this user may use them
    .venv/bin/python testtokens/opencryptoki.py tokens
        (re)initialise every test token from softhsm/layout.toml
    .venv/bin/python testtokens/opencryptoki.py reset-pin LABEL
        unlock LABEL's user PIN with the SO PIN and clear its failure count

``daemon`` and ``check`` need only the standard library (run them with the
system python3); ``tokens`` and ``reset-pin`` need the project's virtualenv.
Nothing here skips: every failure is an error with its reason.
"""

from __future__ import annotations

import argparse
import grp
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF = Path("/etc/opencryptoki/opencryptoki.conf")
STORE = Path("/var/lib/opencryptoki")
LOCKS = Path("/var/lock/opencryptoki")
PIDFILE = Path("/var/run/pkcsslotd.pid")
SOCKET = Path("/var/run/pkcsslotd.socket")
DAEMON = "/usr/sbin/pkcsslotd"
# openCryptoki 3.8's soft-token library keeps its objects in globals: a process
# that uses two slots served by the same library file sees one token's objects
# in the other. Each test slot therefore gets its own copy of the library.
STDLL_DIRS = (
    "/usr/lib/x86_64-linux-gnu/opencryptoki/stdll",
    "/usr/lib/aarch64-linux-gnu/opencryptoki/stdll",
    "/usr/lib/opencryptoki/stdll",
)
STDLL_COPIES = Path("/usr/local/lib/signkit-testtokens")
GROUP = "pkcs11"
MODULE_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
    "/usr/lib/aarch64-linux-gnu/pkcs11/libopencryptoki.so",
    "/usr/lib/pkcs11/libopencryptoki.so",
)
# openCryptoki's default SO PIN. The test tokens keep it: openCryptoki 3.8
# cannot log the SO in again after C_InitToken with any other SO PIN.
DEFAULT_SO_PIN = "87654321"
BEGIN = "# BEGIN signkit test tokens (testtokens/opencryptoki.py rewrites this block)"
END = "# END signkit test tokens"
# Machine-wide: concurrent test sessions take turns on the one set of tokens.
SESSION_LOCK = Path(tempfile.gettempdir()) / "signkit-opencryptoki-tests.lock"


@dataclass(frozen=True)
class Slot:
    """One test slot: its number, store directory, token label and contents."""

    slot_id: int
    label: str
    layout_token: str | None
    """The softhsm/layout.toml token whose objects it holds; None = empty."""
    user_pin: bool = True
    """False leaves the user PIN uninitialised (a token fresh from C_InitToken)."""

    @property
    def tokname(self) -> str:
        """Directory name of the token's store (openCryptoki's ``tokname``)."""
        return self.label

    @property
    def stdll(self) -> Path:
        """This slot's own copy of the soft-token library."""
        return STDLL_COPIES / f"libpkcs11_sw-slot{self.slot_id}.so"

    @property
    def description(self) -> str:
        """Slot description; `check` recognises the slot, and the configuration it
        was started with, by it."""
        return f"signkit test slot {self.label} {_plan_digest()}"


SLOTS: tuple[Slot, ...] = (
    Slot(20, "signkit-demo", "signkit-demo"),
    Slot(21, "signkit-test-a", "signkit-test-a"),
    Slot(22, "signkit-test-b", "signkit-test-b"),
    Slot(23, "signkit-test-c", "signkit-test-c"),
    # Taken to "few tries left", "final try" and "locked" by the tests, then reset.
    Slot(24, "signkit-scratch", "signkit-demo"),
    Slot(25, "signkit-fresh", None, user_pin=False),
)


class SetupError(Exception):
    """Something the person running the tests must fix; the message says what."""


def find_module() -> str:
    """The openCryptoki PKCS#11 library."""
    for path in MODULE_CANDIDATES:
        if os.path.isfile(path):
            return path
    raise SetupError(
        "libopencryptoki.so not found (tried " + ", ".join(MODULE_CANDIDATES) + "): "
        "install the Debian package opencryptoki"
    )


def _slot_lines(slot: Slot) -> list[str]:
    return [f"slot {slot.slot_id}", "{", f"stdll = {slot.stdll}", f"tokname = {slot.tokname}"]


def _plan_digest() -> str:
    # A changed slot plan changes every description, so `daemon` sees that the
    # running pkcsslotd was started with another configuration.
    text = "\n".join(line for slot in SLOTS for line in _slot_lines(slot))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def conf_block() -> str:
    """The slot definitions this script owns in opencryptoki.conf."""
    lines = [BEGIN]
    for slot in SLOTS:
        lines += [*_slot_lines(slot), f'description = "{slot.description}"', "}"]
    lines.append(END)
    return "\n".join(lines) + "\n"


def soft_token_library() -> Path:
    """openCryptoki's soft-token library (the real file)."""
    for directory in STDLL_DIRS:
        path = Path(directory) / "libpkcs11_sw.so"
        if path.exists():
            return path.resolve()
    raise SetupError("libpkcs11_sw.so not found: install the Debian package opencryptoki")


def copy_libraries() -> None:
    """Give each test slot its own copy of the soft-token library (root)."""
    original = soft_token_library().read_bytes()
    STDLL_COPIES.mkdir(parents=True, exist_ok=True)
    STDLL_COPIES.chmod(0o755)
    for slot in SLOTS:
        if slot.stdll.exists() and slot.stdll.read_bytes() == original:
            continue
        tmp = slot.stdll.with_name(f".{slot.stdll.name}.tmp")
        tmp.write_bytes(original)
        tmp.chmod(0o644)
        os.replace(tmp, slot.stdll)


def merged_conf(current: str) -> str:
    """``current`` with the test block replaced (or appended)."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)
    rest = pattern.sub("", current)
    if not rest.endswith("\n"):
        rest += "\n"
    return rest + "\n" + conf_block()


def daemon_pid() -> int | None:
    """The pid of a live pkcsslotd, from its pid file."""
    try:
        pid = int(PIDFILE.read_text().strip())
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except (OSError, ValueError):
        return None
    return pid if comm == "pkcsslotd" else None


def served_slots() -> dict[int, str]:
    """Slot number -> description, as the running daemon serves them (pkcsconf -s)."""
    pkcsconf = shutil.which("pkcsconf") or "/usr/sbin/pkcsconf"
    proc = subprocess.run([pkcsconf, "-s"], capture_output=True, text=True, check=False, timeout=30)
    slots: dict[int, str] = {}
    current: int | None = None
    for line in proc.stdout.splitlines():
        head = re.match(r"Slot #(\d+) Info", line.strip())
        if head:
            current = int(head.group(1))
            continue
        if current is not None and line.strip().startswith("Description:"):
            slots[current] = line.split(":", 1)[1].strip()
    return slots


def missing_slots() -> list[Slot]:
    """Test slots the running daemon does not serve."""
    served = served_slots()
    return [s for s in SLOTS if served.get(s.slot_id) != s.description]


def user_problem() -> str | None:
    """Why this user cannot use openCryptoki, or None."""
    try:
        group = grp.getgrnam(GROUP)
    except KeyError:
        return f"there is no '{GROUP}' group: install the Debian package opencryptoki"
    if os.geteuid() == 0:
        return None
    user = pwd.getpwuid(os.geteuid()).pw_name
    # openCryptoki checks the group's member list, not the process's groups.
    if user not in group.gr_mem and pwd.getpwuid(os.geteuid()).pw_gid != group.gr_gid:
        return (
            f"user {user} is not in the '{GROUP}' group: run "
            f"`sudo usermod -aG {GROUP} {user}` and log in again"
        )
    if group.gr_gid not in os.getgroups():
        return f"user {user} was added to '{GROUP}' after logging in: log in again"
    return None


def check() -> None:
    """Raise SetupError unless the daemon serves every test slot to this user."""
    if not os.path.exists(DAEMON):
        raise SetupError("pkcsslotd not found: install the Debian package opencryptoki")
    problem = user_problem()
    if problem:
        raise SetupError(problem)
    if daemon_pid() is None:
        raise SetupError(
            "openCryptoki's slot daemon pkcsslotd is not running: "
            "run `sudo python3 testtokens/opencryptoki.py daemon` (./dev setup does)"
        )
    missing = missing_slots()
    if missing:
        raise SetupError(
            "pkcsslotd does not serve the test slots "
            + ", ".join(str(s.slot_id) for s in missing)
            + ": run `sudo python3 testtokens/opencryptoki.py daemon` (./dev setup does)"
        )


def _make_dir(path: Path, gid: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, gid)
    path.chmod(0o770)


def _stop_daemon(pid: int) -> None:
    os.kill(pid, 15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if daemon_pid() != pid:
            return
        time.sleep(0.1)
    raise SetupError(f"pkcsslotd (pid {pid}) did not stop within 10 s")


def _start_daemon() -> None:
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        proc = subprocess.run(
            ["systemctl", "restart", "pkcsslotd"], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise SetupError(f"systemctl restart pkcsslotd failed: {proc.stderr.strip()}")
        return
    # No systemd (containers, CI): the daemon forks into the background itself.
    proc = subprocess.run(
        [DAEMON], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise SetupError(f"pkcsslotd failed to start: {(proc.stderr or proc.stdout).strip()}")


def daemon(*, user: str | None) -> str:
    """Configure the test slots and make sure pkcsslotd serves them (as root)."""
    if os.geteuid() != 0:
        raise SetupError("`daemon` configures the machine's openCryptoki: run it as root")
    if not os.path.exists(DAEMON):
        raise SetupError("pkcsslotd not found: install the Debian package opencryptoki")
    try:
        gid = grp.getgrnam(GROUP).gr_gid
    except KeyError as exc:
        raise SetupError(f"there is no '{GROUP}' group: reinstall opencryptoki") from exc
    if user and user != "root":
        if user not in grp.getgrnam(GROUP).gr_mem:
            subprocess.run(["usermod", "-aG", GROUP, user], check=True)
            print(f"added {user} to the '{GROUP}' group: log in again before running the tests")

    copy_libraries()
    current = CONF.read_text(encoding="utf-8") if CONF.exists() else ""
    wanted = merged_conf(current)
    if wanted != current:
        tmp = CONF.with_name(f".{CONF.name}.signkit-tmp")
        tmp.write_text(wanted, encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, CONF)
    _make_dir(STORE, gid)
    _make_dir(LOCKS, gid)
    for slot in SLOTS:
        _make_dir(STORE / slot.tokname, gid)
        _make_dir(STORE / slot.tokname / "TOK_OBJ", gid)
        _make_dir(LOCKS / slot.tokname, gid)
    # The Debian package's own swtok slot, whose lock directory the init
    # script (not the package) creates.
    _make_dir(LOCKS / "swtok", gid)

    pid = daemon_pid()
    if pid is not None and not missing_slots():
        return f"pkcsslotd (pid {pid}) already serves the signkit test slots"
    if pid is not None:
        _stop_daemon(pid)
    _start_daemon()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if daemon_pid() is not None and SOCKET.exists() and not missing_slots():
            return f"pkcsslotd (pid {daemon_pid()}) started with the signkit test slots"
        time.sleep(0.2)
    missing = ", ".join(str(s.slot_id) for s in missing_slots())
    raise SetupError(f"pkcsslotd did not come up serving the test slots (missing: {missing})")


def _load_init_tokens() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "init_tokens", REPO_ROOT / "softhsm" / "init_tokens.py"
    )
    if spec is None or spec.loader is None:
        raise SetupError("softhsm/init_tokens.py not found")
    module = importlib.util.module_from_spec(spec)
    sys.modules["init_tokens"] = module
    spec.loader.exec_module(module)
    return module


def _slot_of(lib: Any, slot_id: int) -> Any:
    for slot in lib.get_slots():
        if slot.slot_id == slot_id:
            return slot
    raise SetupError(f"openCryptoki has no slot {slot_id}: run the `daemon` step first")


def wipe_store(slot: Slot) -> None:
    """Delete a test token's store and its shared-memory copy (no process may have it open).

    Re-initialising a used openCryptoki soft token is not reliable (after
    C_InitToken with a non-default SO PIN, the SO cannot log in again), so
    each build starts from an empty store, as a new installation does.
    """
    store = STORE / slot.tokname
    if not (store / "TOK_OBJ").is_dir():
        raise SetupError(f"{store} is missing: run the `daemon` step first")
    for entry in store.iterdir():
        if entry.is_file() or entry.is_symlink():
            entry.unlink()
    for entry in (store / "TOK_OBJ").iterdir():
        entry.unlink()
    # openCryptoki names it after the store path; the name is fixed, not a temp file.
    shm = Path("/dev/shm") / str(store).strip("/").replace("/", ".")  # noqa: S108
    shm.unlink(missing_ok=True)


def _pkcs11_tool(module: str, *args: str) -> None:
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        raise SetupError("pkcs11-tool not found: install the Debian package opensc")
    proc = subprocess.run(
        [tool, "--module", module, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SetupError(f"pkcs11-tool {args[:3]} failed: {(proc.stderr or proc.stdout).strip()}")


def init_slot(lib: Any, module: str, slot: Slot, layout: Any, pki: Any, it: ModuleType) -> str:
    """C_InitToken, SO PIN, user PIN and objects of one test slot."""
    p11 = _slot_of(lib, slot.slot_id)
    _pkcs11_tool(
        module,
        *("--slot", str(slot.slot_id), "--init-token", "--label", slot.label),
        *("--so-pin", DEFAULT_SO_PIN),
    )
    if not slot.user_pin:
        return f"{slot.label} (slot {slot.slot_id}): initialised, user PIN not set"
    with p11.get_token().open(rw=True, so_pin=DEFAULT_SO_PIN) as session:
        session.init_pin(layout.user_pin)
    lines: list[str] = []
    with p11.get_token().open(rw=True, user_pin=layout.user_pin) as session:
        if slot.layout_token is not None:
            lines = it.populate_token(session, layout.tokens[slot.layout_token], pki)
    return "\n".join([f"{slot.label} (slot {slot.slot_id}):", *lines])


def tokens(labels: Sequence[str] | None = None) -> None:
    """(Re)initialise the test tokens (all, or those named) from softhsm/layout.toml."""
    check()
    it = _load_init_tokens()
    layout = it.load_layout()
    pki = it.Pki()
    import pkcs11

    module = find_module()
    chosen = [s for s in SLOTS if labels is None or s.label in labels]
    for slot in chosen:
        wipe_store(slot)
    lib = pkcs11.lib(module)
    for slot in chosen:
        print(init_slot(lib, module, slot, layout, pki, it))


def reset_pin(label: str) -> None:
    """Unlock ``label``'s user PIN (C_InitPIN as SO), then clear its failure count."""
    import pkcs11

    layout = _load_init_tokens().load_layout()
    slot = next((s for s in SLOTS if s.label == label), None)
    if slot is None or not slot.user_pin:
        raise SetupError(f"{label} is not a test token with a user PIN")
    lib = pkcs11.lib(find_module())
    p11 = _slot_of(lib, slot.slot_id)
    with p11.get_token().open(rw=True, so_pin=DEFAULT_SO_PIN) as session:
        session.init_pin(layout.user_pin)
    # openCryptoki keeps "few tries left" after C_InitPIN until a good login.
    with p11.get_token().open(user_pin=layout.user_pin):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("daemon", help="configure the test slots and (re)start pkcsslotd (root)")
    sub.add_parser("check", help="exit 1 unless pkcsslotd serves the test slots to this user")
    tok = sub.add_parser("tokens", help="(re)initialise the test tokens")
    tok.add_argument("labels", nargs="*", help="only these tokens (default: all)")
    reset = sub.add_parser("reset-pin", help="unlock a test token's user PIN")
    reset.add_argument("label")
    args = parser.parse_args(argv)
    try:
        if args.command == "daemon":
            print(daemon(user=os.environ.get("SUDO_USER")))
        elif args.command == "check":
            check()
        elif args.command == "tokens":
            tokens(args.labels or None)
        else:
            reset_pin(args.label)
    except SetupError as exc:
        message = str(exc)
    except Exception as exc:
        # PKCS#11 and I/O errors: one line naming the layer beats a traceback in CI logs.
        message = f"{type(exc).__name__}: {exc}"
    else:
        return 0
    print(f"testtokens/opencryptoki.py: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
