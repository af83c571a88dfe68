"""One error root for signkit; every error carries its exit code.

The exit codes are a public contract (scripts and cron jobs depend on them):
keep them stable and documented in README and ``--help``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, the same for every command."""

    OK = 0
    DOCUMENTS_FAILED = 1
    USAGE = 2
    INPUT = 3
    TOKEN = 4
    TRUST = 5
    INDETERMINATE = 6
    EXPIRING = 7
    INTERNAL = 70
    TEMPFAIL = 75


EXIT_CODE_TABLE: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (
        1,
        "one or more documents failed (signing failed, verdict FAILED), "
        "or stdout could not be written",
    ),
    (2, "usage error (bad option or argument)"),
    (3, "input error (unreadable or malformed file, bad path)"),
    (4, "token or PIN error"),
    (5, "trust, certificate or configuration error"),
    (6, "worst verdict INDETERMINATE"),
    (7, "a certificate expires within the warning horizon"),
    (70, "internal error (a bug in signkit, in the run or on a document: please report it)"),
    (75, "temporary condition (token absent, service unreachable, busy): retry later"),
)


class InputFault(Exception):
    """Mixed into an exception signkit's own code raises where a parser of a
    dependency would: the input is not what it claims to be. Verification
    reports it in a verdict, as it does a dependency's (signkit.faults)."""


_TRACEBACKS = False
"""Set by the command line's --debug (before any worker is forked)."""


def show_tracebacks(on: bool) -> None:
    """Print the traceback of a bug met on one document (see report_bug)."""
    global _TRACEBACKS
    _TRACEBACKS = on


def report_bug(exc: BaseException, subject: object) -> None:
    """A bug met on one document, where it was raised (a worker): the run goes
    on and the document's record keeps the one-line message; with --debug its
    traceback (never the values of local variables) goes to stderr from here,
    where the frames still are: the exception reaches the main process
    without them."""
    if not _TRACEBACKS:
        return
    import sys
    import traceback

    print(f"internal error on {subject}:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)


class SignkitError(Exception):
    """Root of every error signkit raises on purpose.

    ``subject`` names what failed (a file, a token, a key); ``hint`` tells the
    user what to do next. Messages never contain a PIN.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, subject: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.subject = subject
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}" if self.subject else self.message


class UsageError(SignkitError):
    """Options that contradict each other or are missing."""

    exit_code = ExitCode.USAGE


class InputError(SignkitError):
    """A file or path given by the user cannot be used."""

    exit_code = ExitCode.INPUT


class NothingToDoError(InputError):
    """The inputs name no document: an empty inbox, a pattern that matches
    nothing in an existing folder, an empty manifest. A scheduled run treats
    it as success unless --require-input asks for the error."""


class EmptyShardError(NothingToDoError):
    """The inputs hold documents, but none falls in this run's --shard: the
    other parts have them. Always a success, --require-input or not."""


class InputFormatError(InputError):
    """A file is not what it claims to be, or is malformed."""


class TokenError(SignkitError):
    """Anything about the PKCS#11 module, token, session or key."""

    exit_code = ExitCode.TOKEN


class ModuleLoadError(TokenError):
    """A PKCS#11 module cannot be found or loaded."""


class TokenNotFoundError(TokenError):
    """No token matches the selection."""


class TokenAmbiguousError(TokenError):
    """Several tokens match the selection."""


class KeyNotFoundError(TokenError):
    """No key/certificate pair matches the selection."""


class KeyAmbiguousError(TokenError):
    """Several key/certificate pairs match the selection."""


class MechanismError(TokenError):
    """The token cannot sign with the requested algorithm."""


class TokenOperationError(TokenError):
    """The token failed while working (removed, session lost, device error)."""


class PinError(TokenError):
    """Anything about obtaining or presenting the PIN."""


class PinUnavailableError(PinError):
    """No PIN source is usable (no TTY, no env, no file)."""


class PinIncorrectError(PinError):
    """The token rejected the PIN (after exactly one C_Login)."""


class PinLengthError(PinError):
    """The PIN is shorter or longer than the token accepts: refused before C_Login."""


class PinLockedError(PinError):
    """The token reports its user PIN locked: no login is attempted."""


class PinFinalTryError(PinError):
    """The next wrong PIN locks the token; refused without a person's consent."""


class UnattendedGuardError(PinError):
    """Unattended logins are blocked on this token after a rejected PIN."""


class TrustError(SignkitError):
    """Trust, certificate or configuration problems."""

    exit_code = ExitCode.TRUST


class CertificateError(TrustError):
    """A certificate is unusable (expired, revoked, wrong key usage, ...)."""


class ConfigError(TrustError):
    """The configuration (profile file, options) is invalid."""


class TimestampError(TrustError):
    """The time-stamping authority failed or answered something unusable."""


class RevocationError(TrustError):
    """Revocation status could not be established where it was required."""


class DocumentError(SignkitError):
    """One document could not be signed or verified (the batch goes on)."""

    exit_code = ExitCode.DOCUMENTS_FAILED


class OutputError(InputError):
    """An output cannot be written (exists, collides, directory unwritable)."""


class AuditWriteError(OutputError):
    """The audit log cannot be written (full disk, quota, I/O error): nothing
    whose record is missing may be published."""


class TemporaryError(SignkitError):
    """A condition that passes by itself (a busy lock, an unreachable service):
    a scheduler should retry later."""

    exit_code = ExitCode.TEMPFAIL


class InputLockedError(TemporaryError):
    """Another signkit run holds the document (or the log) right now."""


class ServiceUnreachableError(TemporaryError):
    """A time-stamping, OCSP or CRL service could not be reached."""


class TsaUnreachableError(ServiceUnreachableError, TimestampError):
    """The time-stamping authority did not answer (network, HTTP 5xx)."""

    exit_code = ExitCode.TEMPFAIL


class RevocationUnreachableError(ServiceUnreachableError, RevocationError):
    """No OCSP responder or CRL server answered where an answer was required."""

    exit_code = ExitCode.TEMPFAIL


class TokenAbsentError(TemporaryError, TokenError):
    """The token is not plugged in (or its reader is gone)."""

    exit_code = ExitCode.TEMPFAIL
