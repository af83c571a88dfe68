"""Find PKCS#11 modules and probe them safely in a child process.

Vendor modules hang, crash or print garbage when loaded; a probe runs each
one in its own process under a timeout so one bad module is reported rather
than taking signkit down.
"""

from __future__ import annotations

import json
import os
import platform
import struct
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from signkit.errors import ModuleLoadError
from signkit.tokens.model import PublicObjects, TokenFlags, TokenInfo

# Where p11-kit looks for module registrations (pkcs11.conf(5)).
P11KIT_CONFIG_DIRS: tuple[str, ...] = (
    "/etc/pkcs11/modules",
    "/usr/share/p11-kit/modules",
    "~/.config/pkcs11/modules",
)
# Where p11-kit resolves relative ``module:`` names.
P11KIT_MODULE_DIRS: tuple[str, ...] = (
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/lib/pkcs11",
)
# Install paths of modules users meet, in the order we try them. SoftHSM and
# OpenSC first (common, well behaved), then the Vietnamese CA vendors' tokens.
WELL_KNOWN_MODULES: tuple[tuple[str, str], ...] = (
    ("SoftHSM 2", "/usr/lib/softhsm/libsofthsm2.so"),
    ("SoftHSM 2", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    ("SoftHSM 2", "/usr/local/lib/softhsm/libsofthsm2.so"),
    ("OpenSC", "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"),
    ("OpenSC", "/usr/lib/opensc-pkcs11.so"),
    ("SafeNet eToken", "/usr/lib/libeTPkcs11.so"),
    ("SafeNet eToken", "/usr/lib64/libeTPkcs11.so"),
    ("Bit4id", "/usr/lib/libbit4xpki.so"),
    ("Bit4id", "/usr/local/lib/libbit4xpki.so"),
    ("ePass2003", "/usr/lib/libcastle.so.1.0.0"),
    ("ePass2003", "/usr/local/lib/libcastle.so.1.0.0"),
    ("Feitian", "/usr/lib/libshuttle_p11v220.so"),
    ("Feitian", "/usr/local/lib/libshuttle_p11v220.so"),
    ("FPT-CA", "/usr/lib/fptca_v4.so"),
)
# Registered with p11-kit but never hold signing keys.
NON_SIGNING_MODULES = frozenset({"p11-kit-trust.so", "p11-kit-client.so", "p11-kit-proxy.so"})

DEFAULT_PROBE_TIMEOUT = 15.0


@dataclass(frozen=True, kw_only=True)
class ModuleCandidate:
    """A module file that may be a PKCS#11 library."""

    path: str
    """Absolute path of the shared object."""
    source: str
    """Where we learnt of it: 'option', 'p11-kit', 'well-known'."""
    name: str
    """A human name (registration name or vendor)."""
    problem: str | None = None
    """Why it cannot be loaded here (e.g. a 32-bit module), found without loading it."""


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What a child process found when it loaded one module."""

    candidate: ModuleCandidate
    """The module probed."""
    tokens: tuple[TokenInfo, ...] = ()
    """Tokens present in its slots."""
    library: dict[str, str] = field(default_factory=dict)
    """Library manufacturer, description and version."""
    objects: dict[int, PublicObjects] = field(default_factory=dict)
    """Slot id -> the public objects of each token a user could sign with."""
    error: str | None = None
    """Why the probe failed (hang, crash, load error); None on success."""


def _elf_class(path: Path) -> tuple[int | None, int | None]:
    """(EI_CLASS, e_machine) of an ELF file, or (None, None) if not ELF."""
    try:
        with path.open("rb") as fh:
            head = fh.read(20)
    except OSError:
        return None, None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None, None
    little = head[5] == 1
    (machine,) = struct.unpack("<H" if little else ">H", head[18:20])
    return head[4], machine


def check_module_file(path: str) -> str | None:
    """Why ``path`` cannot be loaded by this (64-bit) Python, or None if it may load."""
    p = Path(path)
    if not p.exists():
        return "file does not exist"
    if not p.is_file():
        return "not a regular file"
    elf_class, _machine = _elf_class(p)
    if elf_class is None:
        return None if sys.platform != "linux" else "not an ELF shared library"
    host_bits = struct.calcsize("P") * 8
    module_bits = 32 if elf_class == 1 else 64
    if module_bits != host_bits:
        return (
            f"{module_bits}-bit module cannot be loaded by this {host_bits}-bit "
            f"{platform.machine()} host; ask the vendor for a {host_bits}-bit module"
        )
    return None


def _parse_module_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        values[key.strip().lower()] = value.strip()
    return values


def _resolve_registered(module: str, module_dirs: Iterable[str]) -> str:
    if os.path.isabs(module):
        return module
    for d in module_dirs:
        candidate = os.path.join(d, module)
        if os.path.exists(candidate):
            return candidate
    return os.path.join(next(iter(module_dirs), "/usr/lib"), module)


def p11kit_modules(
    config_dirs: Iterable[str] = P11KIT_CONFIG_DIRS,
    module_dirs: Iterable[str] = P11KIT_MODULE_DIRS,
) -> list[ModuleCandidate]:
    """Modules registered with p11-kit (its ``*.module`` files), signing ones only."""
    found: dict[str, ModuleCandidate] = {}
    module_dirs = tuple(module_dirs)
    for d in config_dirs:
        directory = Path(os.path.expanduser(d))
        if not directory.is_dir():
            continue
        for entry in sorted(directory.glob("*.module")):
            try:
                values = _parse_module_file(entry.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                continue
            module = values.get("module")
            if not module or values.get("trust-policy", "").lower() == "yes":
                continue
            if os.path.basename(module) in NON_SIGNING_MODULES:
                continue
            path = os.path.realpath(_resolve_registered(module, module_dirs))
            # A user's registration overrides a system one of the same name.
            found.setdefault(
                path,
                ModuleCandidate(
                    path=path,
                    source="p11-kit",
                    name=entry.stem,
                    problem=check_module_file(path),
                ),
            )
    return list(found.values())


def discover_modules(
    *,
    config_dirs: Iterable[str] = P11KIT_CONFIG_DIRS,
    module_dirs: Iterable[str] = P11KIT_MODULE_DIRS,
    well_known: Iterable[tuple[str, str]] = WELL_KNOWN_MODULES,
) -> list[ModuleCandidate]:
    """p11-kit registrations first, then well-known install paths; no duplicates."""
    result: dict[str, ModuleCandidate] = {
        c.path: c for c in p11kit_modules(config_dirs, module_dirs)
    }
    for name, path in well_known:
        if not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        if real in result:
            continue
        result[real] = ModuleCandidate(
            path=real, source="well-known", name=name, problem=check_module_file(real)
        )
    return list(result.values())


def explicit_module(path: str) -> ModuleCandidate:
    """A module named by the user; fails early with a clear reason."""
    problem = check_module_file(path)
    if problem is not None:
        raise ModuleLoadError(
            problem,
            subject=f"PKCS#11 module {path}",
            hint="check the path; `signkit token list` shows the modules found on this machine",
        )
    return ModuleCandidate(path=os.path.realpath(path), source="option", name=path)


def _child_env(base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    env.pop("SIGNKIT_PIN", None)
    return env


def probe_module(
    candidate: ModuleCandidate,
    *,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> ProbeResult:
    """Load ``candidate`` in a child process and list its tokens, bounded by ``timeout``."""
    if candidate.problem is not None:
        return ProbeResult(candidate=candidate, error=candidate.problem)
    cmd = [sys.executable, "-m", "signkit.tokens.probe", candidate.path]
    try:
        proc = subprocess.run(  # noqa: S603 - our own interpreter and module
            cmd,
            capture_output=True,
            timeout=timeout,
            env=_child_env(os.environ if env is None else env),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ProbeResult(
            candidate=candidate, error=f"module did not answer within {timeout:g} s (hung)"
        )
    if proc.returncode < 0:
        return ProbeResult(
            candidate=candidate, error=f"module crashed the probe (signal {-proc.returncode})"
        )
    try:
        data = json.loads(proc.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        last = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        return ProbeResult(
            candidate=candidate,
            error=f"probe failed (exit {proc.returncode}): {last[0][:200]}",
        )
    if data.get("error"):
        return ProbeResult(candidate=candidate, error=str(data["error"]))
    tokens = []
    objects: dict[int, PublicObjects] = {}
    for raw in data.get("tokens", []):
        entry = dict(raw)
        found = entry.pop("objects", None)
        token = TokenInfo(**{**entry, "flags": TokenFlags(**entry["flags"])})
        tokens.append(token)
        if found is not None:
            objects[token.slot_id] = PublicObjects.from_json(found)
    return ProbeResult(
        candidate=candidate,
        tokens=tuple(tokens),
        library=data.get("library", {}),
        objects=objects,
    )
