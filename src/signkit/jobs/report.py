"""The document-result schema shared by every batch command (--json, --report)."""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from signkit.errors import ExitCode, SignkitError

if TYPE_CHECKING:
    from signkit.fsio import Writer

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


@dataclass(kw_only=True, slots=True)
class DocumentResult:
    """What happened to one document (slots: a run over 100,000 documents
    holds one each)."""

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
    verdict: Mapping[str, Any] | None = None
    """The verifier's JSON: a dict, or a ``StoredJSON`` kept in the run's
    ``Spill`` (read back on use)."""

    def to_json(self) -> dict[str, Any]:
        """The document's entry in the machine report. The options are copied;
        the verdict, already the verifier's own JSON, is shared (a batch of
        100,000 documents is written without copying each one twice)."""
        item = {name: getattr(self, name) for name in _RESULT_FIELDS}
        item["status"] = self.status.value
        item["options"] = dict(self.options)
        item["verdict"] = self.verdict_json()
        return item

    def verdict_json(self) -> dict[str, Any] | None:
        """The verdict as a dict, read back once if it was kept in a ``Spill``."""
        verdict = self.verdict
        return verdict.load() if isinstance(verdict, StoredJSON) else verdict  # type: ignore[return-value]

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


class Spill:
    """JSON values of a run kept in a temp file instead of memory: a run over
    100,000 documents holds a few hundred bytes for each, not its verdict
    (several kilobytes as Python objects). The file has no name (O_TMPFILE,
    or created O_EXCL|O_NOFOLLOW under an unpredictable name and unlinked at
    once) in the temp directory (TMPDIR), and goes with the process. When it
    cannot be created or written (a full disk), values stay in memory."""

    def __init__(self, directory: str | None = None, *, write: Writer = os.write) -> None:
        self._directory = directory
        self._write = write
        """Replaces ``os.write`` (a full disk, in tests)."""
        self._file: BinaryIO | None = None
        self._end = 0
        self._broken = False

    def keep(self, value: dict[str, Any], known: tuple[str, ...] = ()) -> Mapping[str, Any]:
        """``value`` as a ``StoredJSON`` (its ``known`` keys held in memory,
        for counts and filters that need no read), or itself when it cannot
        be written."""
        from signkit.fsio import write_all

        if self._broken:
            return value
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        offset = self._end
        try:
            write_all(self._open(), data, write=self._write)
        except OSError:
            # A full disk: this value and the rest stay in memory (a write
            # cut short leaves the offsets of what came before as they were).
            self._broken = True
            return value
        self._end += len(data)
        return StoredJSON(self, offset, len(data), {k: value[k] for k in known})

    def load(self, offset: int, length: int) -> dict[str, Any]:
        """The value written at ``offset``; OutputError when it cannot be read back."""
        from signkit.errors import OutputError

        try:
            if self._file is None:  # closed: what it held is gone
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))
            data = os.pread(self._file.fileno(), length, offset)
        except OSError as exc:
            raise OutputError(
                f"cannot read the run's results back from its temp file ({exc.strerror})"
            ) from None
        if len(data) != length:
            raise OutputError("cannot read the run's results back from its temp file (cut short)")
        return json.loads(data)  # type: ignore[no-any-return]

    def _open(self) -> int:
        if self._file is None:
            import tempfile

            self._file = tempfile.TemporaryFile(dir=self._directory, buffering=0)
        return self._file.fileno()

    def close(self) -> None:
        """Close the file (what it held is gone)."""
        file, self._file = self._file, None
        if file is not None:
            file.close()


class StoredJSON(Mapping[str, Any]):
    """A JSON object kept in a ``Spill``: its known keys answer from memory,
    any other reads the whole object back (``load`` it once to use several)."""

    __slots__ = ("_known", "_length", "_offset", "_spill")

    def __init__(self, spill: Spill, offset: int, length: int, known: dict[str, Any]) -> None:
        self._spill = spill
        self._offset = offset
        self._length = length
        self._known = known

    def load(self) -> dict[str, Any]:
        """The whole object, read back from the spill file."""
        return self._spill.load(self._offset, self._length)

    def __getitem__(self, key: str) -> Any:
        known = self._known
        return known[key] if key in known else self.load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.load())

    def __len__(self) -> int:
        return len(self.load())

    def __bool__(self) -> bool:
        return True  # a verdict is never empty; no read to say so


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
