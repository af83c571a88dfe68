"""Opening an encrypted PDF: with the password given or, with none, with the
empty user password every PDF reader tries first. A document protected only
by an owner password (the usual "secured" PDF: it opens without a prompt but
restricts changes) opens that way, and its permissions (/P) then apply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signkit.errors import InputFormatError


def unlock(
    reader: Any,
    source: str,
    password: str | None,
    *,
    decrypt: Callable[[str], Any] | None = None,
    hint: str | None = None,
) -> Any:
    """Authenticate to the encrypted ``reader`` (pyHanko's AuthResult), with
    ``decrypt`` when the caller's writer must learn the key too. ``hint`` goes
    with the error of a PDF that needs a password to open."""
    from pyhanko.pdf_utils.crypt import AuthStatus, StandardSecurityHandler

    if not isinstance(reader.security_handler, StandardSecurityHandler):
        raise InputFormatError(
            "the PDF is encrypted for its recipients' keys (public-key security), "
            "not with a password: signkit cannot open it",
            subject=source,
        )
    result = (decrypt or reader.decrypt)(password or "")
    if result.status == AuthStatus.FAILED:
        if password:
            raise InputFormatError("wrong password for the encrypted PDF", subject=source)
        raise InputFormatError(
            "the PDF is encrypted with a password to open it", subject=source, hint=hint
        )
    return result
