"""Token-layer rules that need no token: CKR names, start-up hints, PIN length,
token identity and the module lock. The same paths run on real tokens in
tests/integration/test_tokens.py; these pin the wording and the edge cases."""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace
from pathlib import Path

import pkcs11.exceptions as p11e
import pytest

from signkit.errors import PinLengthError, TokenOperationError
from signkit.tokens.ckr import ckr_of, describe_ckr, describe_exception
from signkit.tokens.diagnose import (
    OpenCryptokiFacts,
    Tpm2Facts,
    module_family,
    opencryptoki_hint,
    tpm2_hint,
)
from signkit.tokens.guard import PinGuard
from signkit.tokens.lock import lock_path, module_lock
from signkit.tokens.model import TokenFlags, TokenInfo
from signkit.tokens.pin import Pin, check_pin_length

FLAGS = TokenFlags(
    login_required=True,
    protected_auth_path=False,
    user_pin_count_low=False,
    user_pin_final_try=False,
    user_pin_locked=False,
    user_pin_to_be_changed=False,
    initialized=True,
    write_protected=False,
)
TOKEN = TokenInfo(
    module="/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so",
    slot_id=20,
    slot_description="slot",
    label="signkit-demo",
    manufacturer="IBM Corp.",
    model="IBM SoftTok",
    serial="123",
    flags=FLAGS,
    pin_min=4,
    pin_max=8,
)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (p11e.GeneralError(), 0x5),
        (p11e.HostMemory(), 0x2),
        (p11e.PinLenRange(), 0xA2),
        # python-pkcs11 keeps only a sentence for these
        (p11e.PKCS11Error("User type invalid. Should never see this."), 0x103),
        (p11e.PKCS11Error("Unmapped error code 0x80000123"), 0x80000123),
        (ValueError("x"), None),
    ],
)
def test_return_value_is_recovered_from_the_exception(exc: Exception, code: int | None) -> None:
    assert ckr_of(exc) == code


def test_return_values_are_named_with_their_meaning() -> None:
    assert describe_ckr(0x103) == (
        "CKR_USER_TYPE_INVALID (0x103): the token does not accept this kind of login"
    )
    assert describe_exception(p11e.GeneralError()).startswith("CKR_GENERAL_ERROR (0x5): ")
    assert "vendor-defined error 0x80000123" in describe_ckr(0x80000123)
    assert describe_exception(RuntimeError("dlopen: nope")) == "RuntimeError: dlopen: nope"


def test_module_family_from_the_file_name() -> None:
    assert module_family("/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so") == "opencryptoki"
    assert module_family("/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so.1") == "tpm2"
    assert module_family("/usr/lib/softhsm/libsofthsm2.so") == "softhsm"
    assert module_family("/usr/lib/libeTPkcs11.so") is None


OCK_OK = OpenCryptokiFacts(
    user="clerk", group_exists=True, in_group=True, daemon_running=True, socket_exists=True
)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (replace(OCK_OK, group_exists=False), "'pkcs11' group does not exist"),
        (replace(OCK_OK, in_group=False), "usermod -aG pkcs11 clerk"),
        (replace(OCK_OK, daemon_running=False), "pkcsslotd is not running"),
        (replace(OCK_OK, socket_exists=False), "pkcsslotd is not running"),
        (OCK_OK, "journalctl"),
    ],
)
def test_opencryptoki_hints_name_the_cause(facts: OpenCryptokiFacts, expected: str) -> None:
    assert expected in opencryptoki_hint(facts)


TPM_OK = Tpm2Facts(tcti=None, devices={"/dev/tpmrm0": "ok"}, store=None, store_problem=None)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (replace(TPM_OK, devices={"/dev/tpmrm0": "missing"}), "no TPM device"),
        (replace(TPM_OK, devices={"/dev/tpmrm0": "no access"}), "'tss' group"),
        (replace(TPM_OK, tcti="swtpm:port=2321"), "swtpm:port=2321"),
        (replace(TPM_OK, store="/var/x", store_problem="does not exist"), "/var/x does not"),
        (TPM_OK, "TPM2_PKCS11_LOG_LEVEL"),
    ],
)
def test_tpm2_hints_name_the_cause(facts: Tpm2Facts, expected: str) -> None:
    assert expected in tpm2_hint(facts)


@pytest.mark.parametrize("pin", ["907", "907155331", "90715533\n"])
def test_pin_outside_the_tokens_length_range_is_refused(pin: str) -> None:
    with pytest.raises(PinLengthError) as err:
        check_pin_length(Pin(pin), TOKEN)
    message = err.value.message
    assert "no try used" in message
    # neither the PIN nor its length is told
    assert pin.strip() not in message and str(len(pin)) not in message


def test_pin_inside_the_range_or_without_limits_passes() -> None:
    check_pin_length(Pin("1234"), TOKEN)
    check_pin_length(Pin("12345678"), TOKEN)
    check_pin_length(Pin("1"), replace(TOKEN, pin_min=None, pin_max=None))


def test_identity_is_not_the_serial_alone(tmp_path: Path) -> None:
    """openCryptoki soft tokens all have serial 123: the guard tells them apart by
    label, and still recognises one token reached another way (another module
    path, another slot)."""
    other_label = replace(TOKEN, label="signkit-test-a")
    other_model = replace(TOKEN, model="IBM CCA Token")
    other_way = replace(TOKEN, module="/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so")
    replugged = replace(TOKEN, slot_id=21, slot_description="other reader")
    assert len({t.identity_key() for t in (TOKEN, other_label, other_model)}) == 3
    assert other_way.identity_key() == replugged.identity_key() == TOKEN.identity_key()
    guard = PinGuard(tmp_path)
    guard.block(TOKEN, source="env")
    assert guard.check(replugged) is not None and guard.check(other_way) is not None
    assert guard.check(other_label) is None and guard.check(other_model) is None
    # the audit record says where the token was found, too
    record = replugged.audit_record()
    assert record["serial"] == "123" and record["slot"] == 21 and record["label"]


def _hold(path: str, directory: str, held: object, release: object) -> None:
    with module_lock(path, directory=Path(directory)):
        held.set()  # type: ignore[attr-defined]
        release.wait(30)  # type: ignore[attr-defined]


def test_module_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=("/m.so", str(tmp_path), held, release))
    child.start()
    try:
        assert held.wait(30)
        with pytest.raises(TokenOperationError, match="another signkit run"):
            with module_lock("/m.so", wait=0.2, directory=tmp_path):
                pass
        with module_lock("/other.so", wait=0.2, directory=tmp_path):
            pass  # another module is not held up
    finally:
        release.set()
        child.join(30)
    with module_lock("/m.so", wait=5, directory=tmp_path):
        pass
    assert oct(os.stat(lock_path("/m.so", tmp_path)).st_mode & 0o777) == "0o600"


def test_an_uninitialised_token_is_named_as_such() -> None:
    """Regression: the list of tokens present, in the error a clerk gets for a
    mistyped label, ended with "token '' (serial , slot 4)" (SoftHSM's spare
    slot), which no catalogue message could translate."""
    from signkit import i18n

    blank = replace(TOKEN, label="", serial="", flags=replace(FLAGS, initialized=False))
    assert blank.display_name() == "uninitialised token (slot 20)"
    assert TOKEN.display_name() == "token 'signkit-demo' (serial 123, slot 20)"
    vi = i18n.load_catalogue("vi")
    assert vi.translate(blank.display_name()) == "thiết bị ký số chưa khởi tạo (khe 20)"
