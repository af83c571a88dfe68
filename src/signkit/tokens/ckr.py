"""PKCS#11 return values (CKR_*): names and what they mean, for error messages.

python-pkcs11 turns a return value into an exception class and drops the
number (and for a few values, such as CKR_USER_TYPE_INVALID, keeps only a
sentence); this recovers the value so that a message can name it.
"""

from __future__ import annotations

import re

# PKCS#11 v3.0, pkcs11t.h. The meaning is what a person can act on.
CKR: dict[int, tuple[str, str]] = {
    0x000: ("CKR_OK", "success"),
    0x001: ("CKR_CANCEL", "the operation was cancelled"),
    0x002: ("CKR_HOST_MEMORY", "the module could not allocate memory or failed to start"),
    0x003: ("CKR_SLOT_ID_INVALID", "no such slot"),
    0x005: ("CKR_GENERAL_ERROR", "the module or token failed and cannot say why"),
    0x006: ("CKR_FUNCTION_FAILED", "the module could not complete the request"),
    0x007: ("CKR_ARGUMENTS_BAD", "the module rejected the call's arguments"),
    0x008: ("CKR_NO_EVENT", "no slot event"),
    0x009: ("CKR_NEED_TO_CREATE_THREADS", "the module needs to create threads"),
    0x00A: ("CKR_CANT_LOCK", "the module cannot lock as asked"),
    0x010: ("CKR_ATTRIBUTE_READ_ONLY", "the attribute cannot be changed"),
    0x011: ("CKR_ATTRIBUTE_SENSITIVE", "the attribute is secret"),
    0x012: ("CKR_ATTRIBUTE_TYPE_INVALID", "the object has no such attribute"),
    0x013: ("CKR_ATTRIBUTE_VALUE_INVALID", "an attribute value is invalid"),
    0x01B: ("CKR_ACTION_PROHIBITED", "the token's policy forbids this action"),
    0x020: ("CKR_DATA_INVALID", "the data to sign is invalid for this mechanism"),
    0x021: ("CKR_DATA_LEN_RANGE", "the data to sign has a length the mechanism refuses"),
    0x030: ("CKR_DEVICE_ERROR", "the token or reader reported a hardware error"),
    0x031: ("CKR_DEVICE_MEMORY", "the token is out of memory"),
    0x032: ("CKR_DEVICE_REMOVED", "the token was removed"),
    0x040: ("CKR_ENCRYPTED_DATA_INVALID", "the encrypted data is invalid"),
    0x041: ("CKR_ENCRYPTED_DATA_LEN_RANGE", "the encrypted data has a bad length"),
    0x050: ("CKR_FUNCTION_CANCELED", "the operation was cancelled (PIN pad?)"),
    0x051: ("CKR_FUNCTION_NOT_PARALLEL", "no parallel operation"),
    0x054: ("CKR_FUNCTION_NOT_SUPPORTED", "the module does not implement this function"),
    0x060: ("CKR_KEY_HANDLE_INVALID", "the key is gone"),
    0x062: ("CKR_KEY_SIZE_RANGE", "the key size is outside what the mechanism supports"),
    0x063: ("CKR_KEY_TYPE_INCONSISTENT", "the key type does not fit the mechanism"),
    0x064: ("CKR_KEY_NOT_NEEDED", "no key was needed"),
    0x065: ("CKR_KEY_CHANGED", "the key changed"),
    0x066: ("CKR_KEY_NEEDED", "a key is needed"),
    0x067: ("CKR_KEY_INDIGESTIBLE", "the key cannot be digested"),
    0x068: ("CKR_KEY_FUNCTION_NOT_PERMITTED", "the key may not be used to sign"),
    0x069: ("CKR_KEY_NOT_WRAPPABLE", "the key cannot be wrapped"),
    0x06A: ("CKR_KEY_UNEXTRACTABLE", "the key cannot leave the token"),
    0x070: ("CKR_MECHANISM_INVALID", "the token does not offer this mechanism"),
    0x071: ("CKR_MECHANISM_PARAM_INVALID", "the token refused the mechanism's parameters"),
    0x082: ("CKR_OBJECT_HANDLE_INVALID", "the object is gone"),
    0x090: ("CKR_OPERATION_ACTIVE", "another operation is still active in the session"),
    0x091: ("CKR_OPERATION_NOT_INITIALIZED", "no operation was started"),
    0x0A0: ("CKR_PIN_INCORRECT", "the PIN is wrong"),
    0x0A1: ("CKR_PIN_INVALID", "the PIN contains characters the token refuses"),
    0x0A2: ("CKR_PIN_LEN_RANGE", "the PIN is too short or too long for the token"),
    0x0A3: ("CKR_PIN_EXPIRED", "the PIN has expired"),
    0x0A4: ("CKR_PIN_LOCKED", "the PIN is locked"),
    0x0B0: ("CKR_SESSION_CLOSED", "the session was closed"),
    0x0B1: ("CKR_SESSION_COUNT", "the token has too many open sessions"),
    0x0B3: ("CKR_SESSION_HANDLE_INVALID", "the session is gone"),
    0x0B4: ("CKR_SESSION_PARALLEL_NOT_SUPPORTED", "no parallel sessions"),
    0x0B5: ("CKR_SESSION_READ_ONLY", "the session is read-only"),
    0x0B6: ("CKR_SESSION_EXISTS", "a session is open on the token"),
    0x0B7: ("CKR_SESSION_READ_ONLY_EXISTS", "a read-only session exists"),
    0x0B8: ("CKR_SESSION_READ_WRITE_SO_EXISTS", "the security officer is logged in"),
    0x0C0: ("CKR_SIGNATURE_INVALID", "the signature is invalid"),
    0x0C1: ("CKR_SIGNATURE_LEN_RANGE", "the signature has a bad length"),
    0x0D0: ("CKR_TEMPLATE_INCOMPLETE", "attributes are missing"),
    0x0D1: ("CKR_TEMPLATE_INCONSISTENT", "attributes contradict each other"),
    0x0E0: ("CKR_TOKEN_NOT_PRESENT", "no token in the slot"),
    0x0E1: ("CKR_TOKEN_NOT_RECOGNIZED", "the module does not recognise the token"),
    0x0E2: ("CKR_TOKEN_WRITE_PROTECTED", "the token is write-protected"),
    0x0F0: ("CKR_UNWRAPPING_KEY_HANDLE_INVALID", "the unwrapping key is gone"),
    0x0F1: ("CKR_UNWRAPPING_KEY_SIZE_RANGE", "bad unwrapping key size"),
    0x0F2: ("CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT", "bad unwrapping key type"),
    0x100: ("CKR_USER_ALREADY_LOGGED_IN", "the user is already logged in"),
    0x101: ("CKR_USER_NOT_LOGGED_IN", "the user is not logged in"),
    0x102: ("CKR_USER_PIN_NOT_INITIALIZED", "the token's user PIN was never set"),
    0x103: ("CKR_USER_TYPE_INVALID", "the token does not accept this kind of login"),
    0x104: ("CKR_USER_ANOTHER_ALREADY_LOGGED_IN", "another user is logged in"),
    0x105: ("CKR_USER_TOO_MANY_TYPES", "too many users are logged in"),
    0x110: ("CKR_WRAPPED_KEY_INVALID", "the wrapped key is invalid"),
    0x112: ("CKR_WRAPPED_KEY_LEN_RANGE", "the wrapped key has a bad length"),
    0x113: ("CKR_WRAPPING_KEY_HANDLE_INVALID", "the wrapping key is gone"),
    0x114: ("CKR_WRAPPING_KEY_SIZE_RANGE", "bad wrapping key size"),
    0x115: ("CKR_WRAPPING_KEY_TYPE_INCONSISTENT", "bad wrapping key type"),
    0x120: ("CKR_RANDOM_SEED_NOT_SUPPORTED", "no random seeding"),
    0x121: ("CKR_RANDOM_NO_RNG", "the token has no random generator"),
    0x130: ("CKR_DOMAIN_PARAMS_INVALID", "the key's domain parameters are invalid"),
    0x140: ("CKR_CURVE_NOT_SUPPORTED", "the token does not support this curve"),
    0x150: ("CKR_BUFFER_TOO_SMALL", "an output buffer was too small"),
    0x160: ("CKR_SAVED_STATE_INVALID", "invalid saved state"),
    0x170: ("CKR_INFORMATION_SENSITIVE", "the information is secret"),
    0x180: ("CKR_STATE_UNSAVEABLE", "the state cannot be saved"),
    0x190: ("CKR_CRYPTOKI_NOT_INITIALIZED", "the module was not initialised"),
    0x191: ("CKR_CRYPTOKI_ALREADY_INITIALIZED", "the module was initialised twice"),
    0x1A0: ("CKR_MUTEX_BAD", "bad mutex"),
    0x1A1: ("CKR_MUTEX_NOT_LOCKED", "mutex not locked"),
    0x1B5: ("CKR_EXCEEDED_MAX_ITERATIONS", "too many iterations"),
    0x1B8: ("CKR_PIN_TOO_WEAK", "the PIN is too weak"),
    0x1B9: ("CKR_PUBLIC_KEY_INVALID", "the public key is invalid"),
    0x200: ("CKR_FUNCTION_REJECTED", "the token or its user refused the operation"),
}
CKR_VENDOR_DEFINED = 0x80000000

# python-pkcs11's exception class names (pkcs11.exceptions) -> return value.
_BY_CLASS: dict[str, int] = {
    "AnotherUserAlreadyLoggedIn": 0x104,
    "ArgumentsBad": 0x007,
    "AttributeReadOnly": 0x010,
    "AttributeSensitive": 0x011,
    "AttributeTypeInvalid": 0x012,
    "AttributeValueInvalid": 0x013,
    "DataInvalid": 0x020,
    "DataLenRange": 0x021,
    "DeviceError": 0x030,
    "DeviceMemory": 0x031,
    "DeviceRemoved": 0x032,
    "DomainParamsInvalid": 0x130,
    "EncryptedDataInvalid": 0x040,
    "EncryptedDataLenRange": 0x041,
    "ExceededMaxIterations": 0x1B5,
    "FunctionCancelled": 0x050,
    "FunctionFailed": 0x006,
    "FunctionNotSupported": 0x054,
    "FunctionRejected": 0x200,
    "GeneralError": 0x005,
    "HostMemory": 0x002,
    "KeyHandleInvalid": 0x060,
    "KeyIndigestible": 0x067,
    "KeyNeeded": 0x066,
    "KeyNotNeeded": 0x064,
    "KeyNotWrappable": 0x069,
    "KeySizeRange": 0x062,
    "KeyTypeInconsistent": 0x063,
    "KeyUnextractable": 0x06A,
    "MechanismInvalid": 0x070,
    "MechanismParamInvalid": 0x071,
    "NoEvent": 0x008,
    "ObjectHandleInvalid": 0x082,
    "OperationActive": 0x090,
    "OperationNotInitialized": 0x091,
    "PinExpired": 0x0A3,
    "PinIncorrect": 0x0A0,
    "PinInvalid": 0x0A1,
    "PinLenRange": 0x0A2,
    "PinLocked": 0x0A4,
    "PinTooWeak": 0x1B8,
    "PublicKeyInvalid": 0x1B9,
    "RandomNoRNG": 0x121,
    "RandomSeedNotSupported": 0x120,
    "SessionClosed": 0x0B0,
    "SessionCount": 0x0B1,
    "SessionExists": 0x0B6,
    "SessionHandleInvalid": 0x0B3,
    "SessionReadOnly": 0x0B5,
    "SessionReadOnlyExists": 0x0B7,
    "SessionReadWriteSOExists": 0x0B8,
    "SignatureInvalid": 0x0C0,
    "SignatureLenRange": 0x0C1,
    "SlotIDInvalid": 0x003,
    "TemplateIncomplete": 0x0D0,
    "TemplateInconsistent": 0x0D1,
    "TokenNotPresent": 0x0E0,
    "TokenNotRecognised": 0x0E1,
    "TokenWriteProtected": 0x0E2,
    "UnwrappingKeyHandleInvalid": 0x0F0,
    "UnwrappingKeySizeRange": 0x0F1,
    "UnwrappingKeyTypeInconsistent": 0x0F2,
    "UserAlreadyLoggedIn": 0x100,
    "UserNotLoggedIn": 0x101,
    "UserPinNotInitialized": 0x102,
    "UserTooManyTypes": 0x105,
    "WrappedKeyInvalid": 0x110,
    "WrappedKeyLenRange": 0x112,
    "WrappingKeyHandleInvalid": 0x113,
    "WrappingKeySizeRange": 0x114,
    "WrappingKeyTypeInconsistent": 0x115,
}
# Values python-pkcs11 raises as a bare PKCS11Error with a sentence.
_BY_TEXT: tuple[tuple[str, int], ...] = (
    ("user type invalid", 0x103),
    ("buffer was too small", 0x150),
    ("already initialized", 0x191),
    ("not initialized", 0x190),
    ("parallel not supported", 0x0B4),
)
_UNMAPPED = re.compile(r"error code (0x[0-9a-fA-F]+)")


def ckr_of(exc: BaseException) -> int | None:
    """The CKR value behind a python-pkcs11 exception, when it can be known."""
    for cls in type(exc).__mro__:
        code = _BY_CLASS.get(cls.__name__)
        if code is not None:
            return code
    text = str(exc).lower()
    for needle, code in _BY_TEXT:
        if needle in text:
            return code
    match = _UNMAPPED.search(text)
    return int(match.group(1), 16) if match else None


def describe_ckr(code: int) -> str:
    """'CKR_NAME (0x...): meaning' for messages."""
    if code in CKR:
        name, meaning = CKR[code]
        return f"{name} (0x{code:X}): {meaning}"
    if code & CKR_VENDOR_DEFINED:
        return f"vendor-defined error 0x{code:X} (see the token vendor's documentation)"
    return f"unknown PKCS#11 error 0x{code:X}"


def describe_exception(exc: BaseException) -> str:
    """What a python-pkcs11 (or other) exception says, with its CKR value when known."""
    code = ckr_of(exc)
    if code is not None:
        return describe_ckr(code)
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
