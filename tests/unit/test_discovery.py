"""Module discovery and the child-process probe (no token needed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signkit.errors import ModuleLoadError, TokenAmbiguousError, TokenNotFoundError
from signkit.tokens.access import ModuleScan, choose_module
from signkit.tokens.discovery import (
    ModuleCandidate,
    ProbeResult,
    check_module_file,
    discover_modules,
    explicit_module,
    p11kit_modules,
    probe_module,
)
from signkit.tokens.model import KeySelector, PublicObjects, TokenFlags, TokenInfo


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe takes the module's lock: keep its file out of the home directory."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


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
    assert result.error is not None
    # C_GetFunctionList answered CKR_GENERAL_ERROR: named, with its meaning.
    assert "failed to start: CKR_GENERAL_ERROR (0x5)" in result.error


def test_probe_child_does_not_inherit_the_pin(tmp_path: Path) -> None:
    from signkit.tokens.discovery import _child_env

    assert "SIGNKIT_PIN" not in _child_env({"SIGNKIT_PIN": "1", "PATH": "/bin"})
    assert sys.executable  # the probe runs under the same interpreter


def _token(label: str, slot: int, *, initialized: bool = True, user_pin: bool = True) -> TokenInfo:
    return TokenInfo(
        module="/m.so",
        slot_id=slot,
        slot_description="slot",
        label=label,
        manufacturer="m",
        model="x",
        serial="123",
        flags=TokenFlags(
            login_required=True,
            protected_auth_path=False,
            user_pin_count_low=False,
            user_pin_final_try=False,
            user_pin_locked=False,
            user_pin_to_be_changed=False,
            initialized=initialized,
            write_protected=False,
            user_pin_initialized=user_pin,
        ),
    )


def _probe(path: str, *tokens: tuple[TokenInfo, PublicObjects | None]) -> ProbeResult:
    return ProbeResult(
        candidate=ModuleCandidate(path=path, source="p11-kit", name=path),
        tokens=tuple(t for t, _ in tokens),
        objects={t.slot_id: o for t, o in tokens if o is not None},
    )


CERT = PublicObjects(certificates=(("signer", "01", "ab" * 32),), public_keys=(("signer", "01"),))


def test_blank_slots_of_other_modules_do_not_make_discovery_ambiguous() -> None:
    """Regression (issue 19): SoftHSM, tpm2-pkcs11 and openCryptoki each show a blank
    slot; the one token with a key was called "found in several modules"."""
    scan = ModuleScan(
        results=(
            _probe(
                "/softhsm.so", (_token("mine", 1), CERT), (_token("", 2, initialized=False), None)
            ),
            _probe("/tpm2.so", (_token("", 1, initialized=False), None)),
            # initialised by an administrator, user PIN never set: nobody can sign with it
            _probe("/ock.so", (_token("IBM OS PKCS#11", 3, user_pin=False), None)),
            # initialised and with a PIN, but holding nothing to sign with
            _probe("/empty.so", (_token("empty", 4), PublicObjects())),
        )
    )
    assert choose_module(scan, KeySelector()) == "/softhsm.so"


def test_key_criteria_choose_between_modules_with_usable_tokens() -> None:
    other = PublicObjects(certificates=(("other", "02", "cd" * 32),))
    scan = ModuleScan(
        results=(_probe("/a.so", (_token("a", 1), CERT)), _probe("/b.so", (_token("b", 1), other)))
    )
    with pytest.raises(TokenAmbiguousError, match="several modules"):
        choose_module(scan, KeySelector())
    assert choose_module(scan, KeySelector(cert_fingerprint="CD:" * 31 + "CD")) == "/b.so"
    assert choose_module(scan, KeySelector(key_label="signer")) == "/a.so"
    with pytest.raises(TokenNotFoundError):
        choose_module(scan, KeySelector(token_label="absent"))


def test_probe_result_carries_public_objects_through_json() -> None:
    assert PublicObjects.from_json(CERT.to_json()) == CERT
