"""python-pkcs11 exceptions as signkit TokenErrors that say what failed."""

from __future__ import annotations

import pkcs11.exceptions as p11e

from signkit.errors import (
    MechanismError,
    PinIncorrectError,
    PinLockedError,
    PinUnavailableError,
    TokenAbsentError,
    TokenError,
    TokenOperationError,
)
from signkit.tokens.ckr import describe_exception


def wrap_pkcs11_error(exc: Exception, *, subject: str, action: str) -> TokenError:
    """Turn a python-pkcs11 exception into a TokenError that says what failed,
    naming the PKCS#11 return value (CKR_*) and its meaning."""
    if isinstance(exc, p11e.PinIncorrect):
        return PinIncorrectError("PIN rejected by the token", subject=subject)
    if isinstance(exc, p11e.PinLocked):
        return PinLockedError("the token's PIN is locked", subject=subject)
    if isinstance(exc, p11e.PinLenRange):
        return PinIncorrectError("PIN length out of the token's range", subject=subject)
    if isinstance(exc, p11e.PinExpired):
        return PinUnavailableError(
            "the PIN has expired", subject=subject, hint="change it with the vendor's tool"
        )
    if isinstance(exc, (p11e.TokenNotPresent, p11e.DeviceRemoved)):
        return TokenAbsentError(
            f"token removed while {action}", subject=subject, hint="plug the token in and re-run"
        )
    what = describe_exception(exc)
    if isinstance(exc, p11e.MechanismInvalid):
        return MechanismError(f"{action} failed: {what}", subject=subject)
    if isinstance(exc, p11e.UserPinNotInitialized):
        return PinUnavailableError(
            f"{action} failed: {what}",
            subject=subject,
            hint="set the user PIN with the SO PIN (the vendor's tool, or pkcs11-tool --init-pin)",
        )
    return TokenOperationError(f"{action} failed: {what}", subject=subject)
