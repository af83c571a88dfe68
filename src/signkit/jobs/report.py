"""The document-result schema shared by every batch command (--json, --report)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from signkit.errors import ExitCode, SignkitError

SCHEMA_VERSION = 1

BUG_HINT = "a bug in signkit: run again with --debug for a traceback and report it"
"""The hint of a document that met a bug (its error_code is 70)."""


class Status(StrEnum):
    """Outcome of one document."""

    SIGNED = "signed"
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"
    NOT_ATTEMPTED = "not-attempted"
    VERIFIED = "verified"


@dataclass(kw_only=True)
class DocumentResult:
    """What happened to one document."""

    input: str
    output: str | None = None
    status: Status = Status.PLANNED
    reason: str | None = None
    sha256_before: str | None = None
    sha256_after: str | None = None
    error_class: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    error_hint: str | None = None
    signer_sha256: str | None = None
    level: str | None = None
    signing_time: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    verdict: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The document's entry in the machine report. The options are copied;
        the verdict, already the verifier's own JSON, is shared (a batch of
        100,000 documents is written without copying each one twice)."""
        item = {name: getattr(self, name) for name in _RESULT_FIELDS}
        item["status"] = self.status.value
        item["options"] = dict(self.options)
        return item

    def fail(self, exc: BaseException, *, subject: str | None = None) -> None:
        """Record a failure without losing the error's class, code and text;
        ``subject`` names what failed in place of the error's own subject."""
        self.status = Status.FAILED
        self.error_class = type(exc).__name__
        if isinstance(exc, SignkitError):
            self.error_code = int(exc.exit_code)
            self.error_message = f"{subject}: {exc.message}" if subject else str(exc)
            self.error_hint = exc.hint
        else:
            self.error_code = int(ExitCode.INTERNAL)
            self.error_message = f"internal error ({type(exc).__name__}: {str(exc)[:200]})"
            self.error_hint = BUG_HINT

    @property
    def met_a_bug(self) -> bool:
        """Whether the document failed on a bug in signkit, not a fault of its own."""
        return self.status is Status.FAILED and self.error_code == ExitCode.INTERNAL


_RESULT_FIELDS = tuple(f.name for f in fields(DocumentResult))


def met_a_bug(error_codes: Iterable[int | None]) -> bool:
    """Whether one of the failed documents with these error codes met a bug in
    signkit (not a fault of its own): the run then exits 70, so that a script
    or a person reports it rather than taking it for a bad document (the
    report names it)."""
    return any(code == ExitCode.INTERNAL for code in error_codes)


@dataclass(kw_only=True)
class BatchReport:
    """A whole run: documents, totals, run-level error."""

    command: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None
    level: str | None = None
    signer: dict[str, Any] = field(default_factory=dict)
    documents: list[DocumentResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    run_error: SignkitError | None = None
    dry_run: bool = False
    interrupted: int | None = None
    """The signal that stopped the run, if one did."""
    internal_error: str | None = None
    """The class of a bug in signkit that ended the run (exit 70)."""
    nothing_to_do: str | None = None
    """Why the run found no document (an empty inbox): a success."""
    shard: str | None = None
    """The part of the documents this run took (--shard K/N)."""

    def totals(self) -> dict[str, int]:
        """Count per status."""
        counts = {s.value: 0 for s in Status}
        for doc in self.documents:
            counts[doc.status.value] += 1
        counts["total"] = len(self.documents)
        return counts

    def left_for_later(self) -> list[DocumentResult]:
        """The documents not attempted for a reason of their own that passes by
        itself (another run holds them): a rerun will do them."""
        return [
            d
            for d in self.documents
            if d.status is Status.NOT_ATTEMPTED and d.error_code == ExitCode.TEMPFAIL
        ]

    def exit_code(self) -> int:
        """A stop signal (128+N), then run-level errors (3-5, 75) win; then 70
        if a document met a bug in signkit, 1 if any document failed; then 75
        if one was left for another run to finish."""
        if self.interrupted is not None:
            return 128 + self.interrupted
        if self.internal_error is not None:
            return int(ExitCode.INTERNAL)
        if self.run_error is not None:
            return int(self.run_error.exit_code)
        failed = [d for d in self.documents if d.status is Status.FAILED]
        if met_a_bug(d.error_code for d in failed):
            return int(ExitCode.INTERNAL)
        left = self.left_for_later()
        if failed and all(d.error_code == ExitCode.TEMPFAIL for d in failed):
            # Every failure passes by itself (a TSA outage): retry, not a person.
            return int(ExitCode.TEMPFAIL)
        if failed:
            return int(ExitCode.DOCUMENTS_FAILED)
        if left:
            return int(ExitCode.TEMPFAIL)
        return int(ExitCode.OK)

    def status(self) -> str:
        """One word for scripts: ok, failed (some documents), error (the run), interrupted."""
        if self.interrupted is not None:
            return "interrupted"
        if self.run_error is not None or self.internal_error is not None:
            return "error"
        code = self.exit_code()
        return "ok" if code == ExitCode.OK else ("retry" if code == ExitCode.TEMPFAIL else "failed")

    def to_json(self) -> dict[str, Any]:
        """The machine report."""
        return self._json([d.to_json() for d in self.documents])

    def _json(self, documents: Any) -> dict[str, Any]:
        """The machine report with ``documents`` as its list of documents."""
        finished = self.finished or datetime.now(UTC)
        return {
            "schema_version": SCHEMA_VERSION,
            "command": self.command,
            "dry_run": self.dry_run,
            "started": self.started.isoformat(),
            "finished": finished.isoformat(),
            "duration_s": round((finished - self.started).total_seconds(), 3),
            "level": self.level,
            "signer": self.signer,
            "totals": self.totals(),
            "status": self.status(),
            "exit_code": self.exit_code(),
            "run_error": None
            if self.run_error is None
            else {
                "class": type(self.run_error).__name__,
                "code": int(self.run_error.exit_code),
                "message": str(self.run_error),
                "hint": self.run_error.hint,
            },
            "warnings": self.warnings,
            "nothing_to_do": self.nothing_to_do,
            "shard": self.shard,
            "documents": documents,
        }

    def pieces(self) -> dict[str, Any]:
        """The machine report with its documents as ``Items``: what
        ``stream_json`` and ``write_report`` write one document at a time, so
        the report of a run over 100,000 documents is never one string in
        memory (the text is ``to_json()``'s)."""
        return self._json(Items(d.to_json() for d in self.documents))

    def write(self, path: Path) -> BinaryIO:
        """Write the report atomically (see write_report); returns the written
        file, open and at its start, for --json to print the same text (the
        caller closes it)."""
        return write_report(path, self.pieces())


def write_report(path: Path, data: dict[str, Any]) -> BinaryIO:
    """Write a machine report's ``data`` (see stream_json) atomically: a planted
    symlink or temp name cannot redirect it; OutputError when it cannot be
    written. Returns the written file, open and at its start (the caller
    closes it)."""
    from signkit.errors import OutputError
    from signkit.fsio import atomic_write_stream

    def produce(fh: BinaryIO) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        stream_json(data, text.write)
        text.flush()
        text.detach()

    try:
        return atomic_write_stream(path, produce)
    except OSError as exc:
        raise OutputError(
            f"cannot write the report ({exc.strerror or exc})", subject=str(path)
        ) from None


class Items:
    """A JSON array that ``stream_json`` encodes item by item, as they come."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


def stream_json(
    data: dict[str, Any],
    write: Callable[[str], object],
    *,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """Write ``json.dumps(data, ensure_ascii=False, indent=2) + "\n"`` piece by
    piece: a value of ``data`` that is an ``Items`` is encoded one item at a
    time (the text is the same as for a list). JSON escapes line breaks inside
    strings, so indenting an encoded value's lines indents its structure."""
    encoder = json.JSONEncoder(ensure_ascii=False, indent=2, default=default)
    if not data:
        write("{}\n")
        return
    write("{")
    for number, (key, value) in enumerate(data.items()):
        write(("\n  " if number == 0 else ",\n  ") + encoder.encode(key) + ": ")
        if not isinstance(value, Items):
            write(_indented(encoder.encode(value), "  "))
            continue
        opening = "[\n    "
        for item in value.items:
            write(opening + _indented(encoder.encode(item), "    "))
            opening = ",\n    "
        write("[]" if opening.startswith("[") else "\n  ]")
    write("\n}\n")


def _indented(text: str, pad: str) -> str:
    """An encoded value's text as it stands nested ``pad`` deep."""
    return text.replace("\n", "\n" + pad)
