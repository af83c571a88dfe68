"""PKCS#11 calls python-pkcs11 cannot make, through ctypes: the token's PIN
length limits (C_GetTokenInfo) and a context-specific login with a NULL PIN
(a PIN pad) or its answer CKR_USER_TYPE_INVALID."""

from __future__ import annotations

import ctypes
from typing import Any

from signkit.errors import (
    PinIncorrectError,
    PinLockedError,
    TokenOperationError,
)
from signkit.tokens.ckr import describe_ckr


class _Mechanism(ctypes.Structure):
    _fields_ = (
        ("mechanism", ctypes.c_ulong),
        ("parameter", ctypes.c_void_p),
        ("parameter_len", ctypes.c_ulong),
    )


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _TokenInfo(ctypes.Structure):
    # CK_TOKEN_INFO (PKCS#11 2.40 §3.2), default alignment as on every Unix module.
    _fields_ = (
        ("label", ctypes.c_char * 32),
        ("manufacturer", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serial", ctypes.c_char * 16),
        ("flags", ctypes.c_ulong),
        ("max_sessions", ctypes.c_ulong),
        ("sessions", ctypes.c_ulong),
        ("max_rw_sessions", ctypes.c_ulong),
        ("rw_sessions", ctypes.c_ulong),
        ("max_pin_len", ctypes.c_ulong),
        ("min_pin_len", ctypes.c_ulong),
        ("total_public_memory", ctypes.c_ulong),
        ("free_public_memory", ctypes.c_ulong),
        ("total_private_memory", ctypes.c_ulong),
        ("free_private_memory", ctypes.c_ulong),
        ("hardware_version", _Version),
        ("firmware_version", _Version),
        ("utc_time", ctypes.c_char * 16),
    )


_CKU_CONTEXT_SPECIFIC = 2


_CKR_PIN_INCORRECT = 0xA0


_CKR_PIN_LOCKED = 0xA4


CKR_USER_TYPE_INVALID = 0x103


# CK_UNAVAILABLE_INFORMATION, and a bound past which a PIN length means "no limit".
_UNAVAILABLE = ctypes.c_ulong(-1).value


_NO_LIMIT = 4096


# Positions in CK_FUNCTION_LIST (PKCS#11 2.x order, after the CK_VERSION header).
_FN_GET_TOKEN_INFO, _FN_LOGIN, _FN_SIGN_INIT, _FN_SIGN = 6, 18, 42, 43


class RawCalls:
    """What python-pkcs11 cannot express, called through the module's own
    function list with ctypes: the PIN length limits of CK_TOKEN_INFO, and
    C_SignInit + a context-specific C_Login with a NULL PIN (the reader's
    PIN pad) + C_Sign.

    The library is the one python-pkcs11 already loaded (dlopen returns the
    same handle).
    """

    def __init__(self, module_path: str) -> None:
        lib = ctypes.CDLL(module_path)
        get = lib.C_GetFunctionList
        get.restype = ctypes.c_ulong
        get.argtypes = (ctypes.POINTER(ctypes.c_void_p),)
        table = ctypes.c_void_p()
        if get(ctypes.byref(table)) != 0 or not table.value:
            raise TokenOperationError("C_GetFunctionList failed", subject=module_path)
        ptr = ctypes.sizeof(ctypes.c_void_p)
        base = table.value + ptr  # CK_VERSION, padded to pointer alignment

        def fn(index: int, *argtypes: Any) -> Any:
            address = ctypes.c_void_p.from_address(base + index * ptr).value
            if not address:
                raise TokenOperationError("a PKCS#11 function is missing", subject=module_path)
            return ctypes.CFUNCTYPE(ctypes.c_ulong, *argtypes)(address)

        ulong_p = ctypes.POINTER(ctypes.c_ulong)
        self._token_info = fn(_FN_GET_TOKEN_INFO, ctypes.c_ulong, ctypes.POINTER(_TokenInfo))
        self._login = fn(_FN_LOGIN, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong)
        self._sign_init = fn(
            _FN_SIGN_INIT, ctypes.c_ulong, ctypes.POINTER(_Mechanism), ctypes.c_ulong
        )
        self._sign = fn(
            _FN_SIGN, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ulong_p
        )

    def pin_lengths(self, slot_id: int) -> tuple[int | None, int | None]:
        """(ulMinPinLen, ulMaxPinLen) of the token in ``slot_id``; None where it does not say."""
        info = _TokenInfo()
        if self._token_info(slot_id, ctypes.byref(info)) != 0:
            return None, None
        low: int | None = int(info.min_pin_len)
        high: int | None = int(info.max_pin_len)
        if low == _UNAVAILABLE or not low:
            low = None
        if high == _UNAVAILABLE or not high or high >= _NO_LIMIT or (low and high < low):
            high = None
        return low, high

    def context_sign(
        self, session: int, key: int, mechanism: int, data: bytes, *, pin: bytes | None, name: str
    ) -> tuple[bytes, bool]:
        """C_SignInit, context-specific C_Login (NULL PIN = PIN pad), C_Sign.

        Returns the signature and whether the token refused the context-specific
        login with CKR_USER_TYPE_INVALID (it then signs on the logged-in session).
        """
        mech = _Mechanism(mechanism, None, 0)
        rv = self._sign_init(session, ctypes.byref(mech), key)
        if rv != 0:
            raise TokenOperationError(f"C_SignInit failed: {describe_ckr(rv)}", subject=name)
        rv = self._login(session, _CKU_CONTEXT_SPECIFIC, pin, len(pin) if pin else 0)
        if rv == _CKR_PIN_INCORRECT:
            raise PinIncorrectError("PIN rejected for the signature", subject=name)
        if rv == _CKR_PIN_LOCKED:
            raise PinLockedError("the token's PIN is locked", subject=name)
        refused = rv == CKR_USER_TYPE_INVALID
        if rv != 0 and not refused:
            raise TokenOperationError(
                f"context-specific login failed: {describe_ckr(rv)}", subject=name
            )
        size = ctypes.c_ulong(0)
        rv = self._sign(session, data, len(data), None, ctypes.byref(size))
        if rv != 0:
            raise TokenOperationError(f"C_Sign failed: {describe_ckr(rv)}", subject=name)
        out = ctypes.create_string_buffer(size.value)
        rv = self._sign(session, data, len(data), out, ctypes.byref(size))
        if rv != 0:
            raise TokenOperationError(f"C_Sign failed: {describe_ckr(rv)}", subject=name)
        return out.raw[: size.value], refused
