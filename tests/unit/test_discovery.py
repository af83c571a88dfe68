"""Module discovery and the child-process probe (no token needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signkit.errors import ModuleLoadError
from signkit.tokens.discovery import (
    ModuleCandidate,
    check_module_file,
    discover_modules,
    explicit_module,
    p11kit_modules,
    probe_module,
)


def _fake_module(tmp_path: Path, body: str) -> Path:
    """Compile a tiny shared object whose C_GetFunctionList misbehaves."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("a C compiler is needed to build the misbehaving test modules")
    src = tmp_path / "m.c"
    src.write_text(
        "#include <unistd.h>\n#include <stdlib.h>\n"
        f"unsigned long C_GetFunctionList(void **p) {{ {body} return 5; }}\n"
    )
    out = tmp_path / "libbad.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
    return out


def test_p11kit_registrations(tmp_path: Path) -> None:
    conf = tmp_path / "modules"
    libdir = tmp_path / "lib"
    conf.mkdir()
    libdir.mkdir()
    (libdir / "vendor.so").write_bytes(b"\x7fELF\x02\x01" + b"\x00" * 30)
    (conf / "vendor.module").write_text("# comment\nmodule: vendor.so\n")
    (conf / "trust.module").write_text("module: p11-kit-trust.so\ntrust-policy: yes\n")
    (conf / "abs.module").write_text(f"module: {libdir / 'vendor.so'}\n")
    (conf / "empty.module").write_text("critical: yes\n")
    found = p11kit_modules([str(conf)], [str(libdir)])
    assert [c.path for c in found] == [str(libdir / "vendor.so")]  # deduplicated
    assert found[0].source == "p11-kit"


def test_well_known_paths_after_p11kit(tmp_path: Path) -> None:
    lib = tmp_path / "libeTPkcs11.so"
    lib.write_bytes(b"\x7fELF\x02\x01" + b"\x00" * 30)
    found = discover_modules(config_dirs=[], module_dirs=[], well_known=[("SafeNet", str(lib))])
    assert [(c.name, c.source) for c in found] == [("SafeNet", "well-known")]


def test_32bit_module_is_explained(tmp_path: Path) -> None:
    lib = tmp_path / "fptca_v4.so"
    lib.write_bytes(b"\x7fELF\x01\x01\x01" + b"\x00" * 9 + b"\x03\x00\x03\x00")
    problem = check_module_file(str(lib))
    assert problem is not None and "32-bit module" in problem and "64-bit" in problem
    result = probe_module(
        ModuleCandidate(path=str(lib), source="well-known", name="FPT-CA", problem=problem)
    )
    assert result.error == problem


def test_explicit_missing_module_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError) as err:
        explicit_module(str(tmp_path / "nope.so"))
    assert "does not exist" in str(err.value) and "token list" in (err.value.hint or "")
    text = tmp_path / "text.so"
    text.write_text("not a library")
    with pytest.raises(ModuleLoadError, match="not an ELF"):
        explicit_module(str(text))


def test_hanging_module_is_reported_not_fatal(tmp_path: Path) -> None:
    lib = _fake_module(tmp_path, "sleep(600);")
    result = probe_module(ModuleCandidate(path=str(lib), source="option", name="hang"), timeout=2)
    assert result.error is not None and "hung" in result.error


def test_crashing_module_is_reported_not_fatal(tmp_path: Path) -> None:
    lib = _fake_module(tmp_path, "abort();")
    result = probe_module(ModuleCandidate(path=str(lib), source="option", name="crash"))
    assert result.error is not None and "crashed" in result.error


def test_failing_module_is_reported(tmp_path: Path) -> None:
    lib = _fake_module(tmp_path, "")
    result = probe_module(ModuleCandidate(path=str(lib), source="option", name="fail"))
    assert result.error is not None and "cannot load" in result.error


def test_probe_child_does_not_inherit_the_pin(tmp_path: Path) -> None:
    from signkit.tokens.discovery import _child_env

    assert "SIGNKIT_PIN" not in _child_env({"SIGNKIT_PIN": "1", "PATH": "/bin"})
    assert sys.executable  # the probe runs under the same interpreter
