"""Opening an encrypted PDF: with the password given or, with none, with the
empty user password every PDF reader tries first. A document protected only
by an owner password (the usual "secured" PDF: it opens without a prompt but
restricts changes) opens that way, and its permissions (/P) then apply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signkit.errors import InputFormatError

OPEN_HINT = "give its password with --password-file or SIGNKIT_PDF_PASSWORD"
"""The hint of a PDF that needs a password to open, where one may be given."""


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


def unlock_to_read(
    reader: Any, source: str, password: str | None, *, hint: str | None = None
) -> str | None:
    """Open the encrypted ``reader`` to read it: with the empty user password
    first, as every PDF reader does, then with ``password`` (one password
    serves a batch, and most of its documents need none). Returns the
    password that opened it (None: the empty one)."""
    try:
        unlock(reader, source, None, hint=hint)
        return None
    except InputFormatError:
        if not password:
            raise
    unlock(reader, source, password)
    return password


@dataclass(frozen=True)
class Access:
    """What the password that opened an encrypted PDF allows, by the
    document's permissions (/P): its owner password allows everything."""

    owner: bool
    fill: bool
    """Filling in an existing signature field."""
    add: bool
    """Adding fields or document-level data (a new signature field, a
    certification, a document time-stamp, validation data)."""


def writer_access(
    writer: Any, source: str, password: str | None, *, hint: str | None = None
) -> Access:
    """Open the encrypted document of pyHanko's incremental ``writer`` (see
    ``unlock``), so that its update is encrypted alike, and read what the
    password that opened it allows."""
    from pyhanko.pdf_utils.crypt import AuthStatus
    from pyhanko.pdf_utils.crypt import StandardSecuritySettingsRevision as Revision
    from pyhanko.pdf_utils.crypt.permissions import StandardPermissions as Perm

    result = unlock(writer.prev, source, password, decrypt=writer.encrypt, hint=hint)
    if result.status == AuthStatus.OWNER:
        return Access(owner=True, fill=True, add=True)
    flags = result.permission_flags or Perm(0)
    annotate = Perm.ALLOW_ANNOTS_FORM_FILLING in flags
    # ISO 32000 Table 22: bit 9 lets a reader fill in existing fields,
    # signature fields included, even without bit 6; it means nothing before
    # revision 3. A new field needs bit 6 together with bit 4.
    fill = annotate or (
        writer.prev.security_handler.revision >= Revision.RC4_EXTENDED
        and Perm.ALLOW_FORM_FILLING in flags
    )
    add = annotate and Perm.ALLOW_MODIFICATION_GENERIC in flags
    return Access(owner=False, fill=fill, add=add)


def update_access(
    writer: Any, source: str, password: str | None, *, hint: str | None = None
) -> Access:
    """``writer_access`` for an update (validation data, a time-stamp): with
    ``password`` when it opens the document (as its owner password it lifts
    the permissions), else with the empty user password; when neither opens
    it, the error is the password's."""
    if not password:
        return writer_access(writer, source, None, hint=hint)
    try:
        return writer_access(writer, source, password)
    except InputFormatError as wrong:
        try:
            return writer_access(writer, source, None)
        except InputFormatError:
            raise wrong from None
