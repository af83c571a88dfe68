"""Why a PKCS#11 module loaded but would not start, for the modules whose causes are known.

A failed C_Initialize says little: openCryptoki answers CKR_HOST_MEMORY or
CKR_FUNCTION_FAILED whether its slot daemon is down or the user is not in
its group, and logs the reason only to syslog. The facts are cheap to read
from the machine, so the hint names the cause instead of guessing.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

OPENCRYPTOKI_GROUP = "pkcs11"
OPENCRYPTOKI_PIDFILE = "/run/pkcsslotd.pid"
OPENCRYPTOKI_SOCKET = "/run/pkcsslotd.socket"
TPM_DEVICES = ("/dev/tpmrm0", "/dev/tpm0")
TPM2_TCTI_VARS = ("TPM2_PKCS11_TCTI", "TPM2TOOLS_TCTI", "TCTI")


def module_family(path: str) -> str | None:
    """'opencryptoki', 'tpm2', 'softhsm' or None, from the module's file name."""
    name = os.path.basename(os.path.realpath(path)).lower()
    if "opencryptoki" in name or name.startswith("pkcs11_api"):
        return "opencryptoki"
    if "tpm2_pkcs11" in name or "tpm2-pkcs11" in name:
        return "tpm2"
    if "softhsm" in name:
        return "softhsm"
    return None


@dataclass(frozen=True, kw_only=True)
class OpenCryptokiFacts:
    """What decides whether openCryptoki can start for this user."""

    user: str
    """The effective user's name."""
    group_exists: bool
    """The 'pkcs11' group exists (the package created it)."""
    in_group: bool
    """The user may use openCryptoki (root, or listed in the group)."""
    daemon_running: bool
    """pkcsslotd's pid file names a live pkcsslotd."""
    socket_exists: bool
    """pkcsslotd's socket is there."""


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def opencryptoki_facts() -> OpenCryptokiFacts:
    """Read the facts from this machine."""
    euid = os.geteuid()
    user = _user_name(euid)
    try:
        group: grp.struct_group | None = grp.getgrnam(OPENCRYPTOKI_GROUP)
    except KeyError:
        group = None
    # openCryptoki (like this check) consults the group's member list and the
    # user's primary group, not the groups of the running process.
    in_group = euid == 0 or (
        group is not None and (user in group.gr_mem or _primary_gid(euid) == group.gr_gid)
    )
    running = False
    try:
        pid = int(Path(OPENCRYPTOKI_PIDFILE).read_text(encoding="ascii").strip())
        running = Path(f"/proc/{pid}/comm").read_text(encoding="ascii").strip() == "pkcsslotd"
    except (OSError, ValueError):
        pass
    return OpenCryptokiFacts(
        user=user,
        group_exists=group is not None,
        in_group=in_group,
        daemon_running=running,
        socket_exists=os.path.exists(OPENCRYPTOKI_SOCKET),
    )


def _primary_gid(uid: int) -> int | None:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def opencryptoki_hint(facts: OpenCryptokiFacts) -> str:
    """The cause of a failed openCryptoki start, as far as the facts show it."""
    if not facts.group_exists:
        return (
            f"openCryptoki's '{OPENCRYPTOKI_GROUP}' group does not exist: "
            "reinstall the opencryptoki package"
        )
    if not facts.in_group:
        return (
            f"user {facts.user} is not in the '{OPENCRYPTOKI_GROUP}' group, which openCryptoki "
            f"requires: `sudo usermod -aG {OPENCRYPTOKI_GROUP} {facts.user}`, then log in again"
        )
    if not facts.daemon_running or not facts.socket_exists:
        return (
            "openCryptoki's slot daemon pkcsslotd is not running: "
            "`sudo systemctl start pkcsslotd` (or `sudo pkcsslotd`)"
        )
    return (
        "pkcsslotd runs and the user is in the pkcs11 group; openCryptoki logs the cause "
        "to syslog (`journalctl -t pkcsslotd`, `journalctl | grep -i opencryptoki`)"
    )


@dataclass(frozen=True, kw_only=True)
class Tpm2Facts:
    """What decides whether tpm2-pkcs11 can reach a TPM and its store."""

    tcti: str | None
    """The TCTI the module was told to use (environment), if any."""
    devices: Mapping[str, str]
    """TPM device path -> 'ok', 'no access' or 'missing'."""
    store: str | None
    """TPM2_PKCS11_STORE, if set."""
    store_problem: str | None
    """Why the store directory cannot be used, if it cannot."""


def tpm2_facts(environ: Mapping[str, str] | None = None) -> Tpm2Facts:
    """Read the facts from this machine and ``environ``."""
    env = os.environ if environ is None else environ
    tcti = next((env[v] for v in TPM2_TCTI_VARS if env.get(v)), None)
    devices: dict[str, str] = {}
    for dev in TPM_DEVICES:
        if not os.path.exists(dev):
            devices[dev] = "missing"
        else:
            devices[dev] = "ok" if os.access(dev, os.R_OK | os.W_OK) else "no access"
    store = env.get("TPM2_PKCS11_STORE")
    problem = None
    if store:
        if not os.path.isdir(store):
            problem = "does not exist"
        elif not os.access(store, os.R_OK | os.W_OK | os.X_OK):
            problem = "is not writable by this user"
    return Tpm2Facts(tcti=tcti, devices=devices, store=store, store_problem=problem)


def tpm2_hint(facts: Tpm2Facts) -> str:
    """The likely cause of a failed tpm2-pkcs11 start."""
    if facts.store and facts.store_problem:
        return f"TPM2_PKCS11_STORE={facts.store} {facts.store_problem}"
    if facts.tcti and not facts.tcti.startswith("device"):
        return (
            f"tpm2-pkcs11 uses the TCTI '{facts.tcti}': check that the TPM (or swtpm / "
            "tpm2-abrmd) it names is running and reachable"
        )
    if all(state == "missing" for state in facts.devices.values()):
        return (
            "no TPM device on this machine (/dev/tpmrm0): enable the TPM, or point "
            "TPM2_PKCS11_TCTI at a software TPM"
        )
    if not any(state == "ok" for state in facts.devices.values()):
        return (
            "this user may not open /dev/tpmrm0: add it to the 'tss' group "
            "(`sudo usermod -aG tss USER`), then log in again"
        )
    return (
        "the TPM is reachable: check the tpm2-pkcs11 store (TPM2_PKCS11_STORE, "
        "~/.tpm2_pkcs11) and set TPM2_PKCS11_LOG_LEVEL=2 to see the module's reason"
    )


def start_failure_hint(path: str) -> str:
    """What to check when ``path`` loaded but failed to initialise."""
    family = module_family(path)
    if family == "opencryptoki":
        return opencryptoki_hint(opencryptoki_facts())
    if family == "tpm2":
        return tpm2_hint(tpm2_facts())
    if family == "softhsm":
        conf = os.environ.get("SOFTHSM2_CONF", "/etc/softhsm/softhsm2.conf")
        return (
            f"SoftHSM reads its configuration from {conf} (SOFTHSM2_CONF): check that it "
            "exists and that its directories.tokendir is readable by this user"
        )
    return (
        "the module loaded but refused to start: check that the token vendor's service "
        "is running and that this user may use the token (group membership, udev rules)"
    )
