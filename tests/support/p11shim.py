"""The test PKCS#11 module of p11shim.c: SoftHSM behind it, faults and barriers on cue."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from support.infra import InfraError

SOURCE = Path(__file__).with_name("p11shim.c")

# PKCS#11 return codes (PKCS#11 v2.40, section 11.1)
CKR_SESSION_HANDLE_INVALID = 0xB3
CKR_TOKEN_NOT_PRESENT = 0xE0
CKR_DEVICE_REMOVED = 0x32


def build_shim(directory: Path) -> Path:
    """Compile p11shim.c into ``directory``; fail (never skip) without a compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise InfraError("a C compiler is needed for the test PKCS#11 module (apt install gcc)")
    out = directory / "libp11shim.so"
    proc = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(out), str(SOURCE), "-ldl"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InfraError(f"cannot build the test PKCS#11 module:\n{proc.stderr}")
    return out


@dataclass(frozen=True)
class Shim:
    """The compiled module and the real one it forwards to."""

    path: Path
    real: str

    def env(self, **settings: object) -> dict[str, str]:
        """Environment for a run through the shim: SHIM_MODULE plus ``settings``
        (``fail_after=5`` becomes SHIM_FAIL_AFTER=5, and so on)."""
        env = {"SHIM_MODULE": self.real}
        for key, value in settings.items():
            env[f"SHIM_{key.upper()}"] = hex(value) if key == "fail_ckr" else str(value)
        return env


def sign_log(path: Path) -> list[tuple[str, int, int]]:
    """(kind, pid, value) for each line the shim logged: 'sign' lines count the
    token's signatures per process, 'barrier' lines the parties seen."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        kind, pid, value = line.split()
        out.append((kind, int(pid), int(value)))
    return out
