"""Append-only JSON Lines audit log; each line carries the SHA-256 of the previous one.

Writers buffer records and commit them in groups: take an exclusive lock,
read the current tail (another run may have appended), chain, write, fsync,
unlock. So concurrent runs never interleave a record or fork the chain, and
a batch pays one fsync per group, not per document. A torn last line (a
crash mid-write) is detected by the next writer, marked, and chained over.

Every commit ends in a ``seal`` record, in the same write: an Ed25519
signature by the audit seal key (never a person's signing key, so no PIN and
no log data under a legal signature) over the seal line, whose ``prev``
covers everything before it. Anyone can rebuild a bare hash chain; nobody
without the seal key can rebuild the seals. Closing the log can add an
RFC 3161 time-stamp of the run's last seal, and copies the run's last seal
to an anchor file: removing whole runs from the end of a chain is only
visible against a copy kept elsewhere.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import getpass
import hashlib
import json
import logging
import logging.handlers
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signkit.audit.seal import SealKey, canonical, default_seal_key_path, load_or_create_seal_key
from signkit.errors import AuditWriteError, ConfigError, TimestampError
from signkit.fsio import Writer, create_exclusive, fsync_directory, temp_name, write_all

GENESIS = "0" * 64
_TAIL_CHUNK = 64 * 1024
SYSLOG_ENV = "SIGNKIT_SYSLOG_SOCKET"
"""Overrides the syslog socket (default /dev/log, which journald also serves)."""


def default_audit_path() -> Path:
    """$XDG_STATE_HOME/signkit/audit.jsonl."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "signkit" / "audit.jsonl"


def default_anchor_path(log: Path) -> Path:
    """Where seals are copied when no anchor is configured: ``<log>.anchor``."""
    return log.with_name(log.name + ".anchor")


def line_hash(line: bytes) -> str:
    """Chain hash of one line (without its newline)."""
    return hashlib.sha256(line).hexdigest()


def now_local() -> str:
    """UTC instant with the local offset, ISO 8601 (e.g. 2026-03-12T09:41:07+07:00)."""
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on a line, or None when it is not one (torn, edited into garbage)."""
    try:
        record = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict):
        return None
    seq, prev = record.get("seq"), record.get("prev")
    if type(seq) is not int or not isinstance(prev, str):
        return None
    return record


@dataclass(frozen=True, kw_only=True)
class AuditSpec:
    """How a run writes the audit log (beyond its path)."""

    seal: bool = True
    """Seal what this run wrote when it closes the log."""
    seal_key: Path | None = None
    """Ed25519 seal key (PEM); None = $XDG_STATE_HOME/signkit/audit-seal.key, made on first use."""
    tsa: Any = None
    """TsaSpec: also time-stamp each run's last line (RFC 3161)."""
    anchor: Path | None = None
    """File the seals are copied to; None = ``<log>.anchor``."""
    syslog: bool = False
    """Forward every record to syslog/journald."""
    syslog_socket: str | None = None
    """Socket path for ``syslog`` (default $SIGNKIT_SYSLOG_SOCKET, else /dev/log)."""
    max_bytes: int | None = None
    """Rotate the log once it grows past this size."""


@dataclass(frozen=True)
class _Tail:
    seq: int
    """Sequence number of the last record (0 for an empty log)."""
    prev: str
    """Hash the next line must carry."""
    torn: bytes | None
    """A last line that is not a record (crash while writing), still unmarked."""
    newline_missing: bool
    """The torn line has no newline yet."""


def _lines_backwards(fd: int) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, ends with a newline) from the end of the file, newest first."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    complete = os.pread(fd, 1, size - 1) == b"\n"
    pos = size - 1 if complete else size
    buf = b""
    first = True
    while True:
        cut = buf.rfind(b"\n")
        if cut >= 0:
            line, buf = buf[cut + 1 :], buf[:cut]
            yield line, complete or not first
            first = False
            continue
        if pos == 0:
            yield buf, complete or not first
            return
        start = max(0, pos - _TAIL_CHUNK)
        buf = os.pread(fd, pos - start, start) + buf
        pos = start


def _read_tail(fd: int) -> _Tail:
    """Where the chain ends, and whether a torn line must be marked first."""
    torn: bytes | None = None
    newline_missing = False
    for index, (line, complete) in enumerate(_lines_backwards(fd)):
        record = parse_record(line) if complete else None
        if record is not None:
            prev = line_hash(torn) if torn is not None else line_hash(line)
            return _Tail(record["seq"], prev, torn, newline_missing)
        if index == 0:
            # Only the last line can be torn; anything further up is left to
            # `audit verify` to report, and the chain continues after it.
            torn, newline_missing = line, not complete
            continue
        if torn is not None:
            return _Tail(_seq_before(fd), line_hash(torn), torn, newline_missing)
    if torn is not None:
        return _Tail(0, line_hash(torn), torn, newline_missing)
    return _Tail(0, GENESIS, None, False)


def _seq_before(fd: int) -> int:
    for line, complete in _lines_backwards(fd):
        record = parse_record(line) if complete else None
        if record is not None:
            return int(record["seq"])
    return 0


def _probe_syslog(address: str) -> None:
    """Raise OSError unless a syslog socket answers at ``address``."""
    error: OSError | None = None
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        probe = socket.socket(socket.AF_UNIX, kind)
        try:
            probe.connect(address)
            return
        except OSError as exc:
            error = exc
        finally:
            probe.close()
    assert error is not None  # noqa: S101 - the loop ran
    raise error


_SYSLOG_SEND_TIMEOUT = 1.0
"""Seconds one record may wait for a full syslog queue before syslog is given up."""


class _Syslog(logging.handlers.SysLogHandler):
    failures = 0
    stalled = False
    """A send timed out: the rest of the run does not wait for syslog again."""

    def _connect_unixsocket(self, address: Any) -> None:
        super()._connect_unixsocket(address)  # type: ignore[misc]
        # A syslog daemon that stops reading must not hang a signing run.
        self.socket.settimeout(_SYSLOG_SEND_TIMEOUT)  # type: ignore[attr-defined]

    def emit(self, record: logging.LogRecord) -> None:
        if self.stalled:
            self.failures += 1
            return
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        # A syslog hiccup must not print a traceback or stop a signing run;
        # the file is the record of truth, syslog is a copy.
        self.failures += 1
        if isinstance(sys.exc_info()[1], TimeoutError):
            self.stalled = True


class AuditLog:
    """One audit log file, shared safely by concurrent runs."""

    def __init__(
        self,
        path: Path,
        spec: AuditSpec | None = None,
        *,
        warn: Callable[[str], None] | None = None,
        write: Writer = os.write,
    ) -> None:
        self.path = path
        self.spec = spec or AuditSpec()
        self._write = write
        """``os.write``, or a fault injector (a full disk) in tests."""
        self._broken: AuditWriteError | None = None
        """Set when a write failed: nothing more is written by this run."""
        self.run_id = str(uuid.uuid4())
        """Stamped on every record this object writes."""
        self._warn = warn or (lambda _text: None)
        self._pending: list[dict[str, Any]] = []
        self._last: tuple[int, str] | None = None
        self._last_lines: list[bytes] = []
        self._seal_key: SealKey | None = None
        if self.spec.seal:
            self._seal_key = load_or_create_seal_key(self.spec.seal_key or default_seal_key_path())
        self._fd = self._open()
        self._syslog: _Syslog | None = None
        self._logger: logging.Logger | None = None
        if self.spec.syslog:
            address = self.spec.syslog_socket or os.environ.get(SYSLOG_ENV) or "/dev/log"
            try:
                # The handler itself silently defers an unreachable socket; an
                # office that asked for syslog copies must hear it is not there.
                _probe_syslog(address)
                handler = _Syslog(address=address, facility=_Syslog.LOG_AUTHPRIV)
            except OSError as exc:
                os.close(self._fd)
                raise ConfigError(
                    f"cannot reach syslog ({exc.strerror or exc})",
                    subject=address,
                    hint=f"set {SYSLOG_ENV} to the syslog socket, or drop --audit-syslog",
                ) from None
            handler.ident = "signkit-audit: "
            logger = logging.Logger("signkit.audit")
            logger.propagate = False
            logger.addHandler(handler)
            self._syslog, self._logger = handler, logger

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the audit log ({exc.strerror})",
                subject=str(self.path),
                hint="use --audit-log PATH, or --no-audit",
            ) from None

    def _lock(self) -> None:
        """Exclusive lock on the file currently at ``path`` (it may have been rotated)."""
        while True:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = -1
            if current == os.fstat(self._fd).st_ino:
                return
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = self._open()

    def _unlock(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def add(self, record: Mapping[str, Any]) -> None:
        """Queue a record; it becomes durable at the next ``commit``."""
        self._pending.append({"time": now_local(), "run": self.run_id, **record})

    def commit(self) -> None:
        """Chain and fsync every queued record under an exclusive lock.

        Raises AuditWriteError when the records cannot be made durable (full
        disk, quota, I/O error); the log is then left as it was before the
        write, and this object writes nothing more."""
        if not self._pending:
            return
        records, self._pending = self._pending, []
        self._append(records)

    def _append(self, records: list[dict[str, Any]]) -> list[bytes]:
        if self._broken is not None:
            raise self._broken
        self._lock()
        try:
            # Rotate before writing, so the new file's records follow its
            # `rotated` record and this run's seal covers them.
            limit = self.spec.max_bytes
            if limit is not None and os.fstat(self._fd).st_size >= max(limit, 1):
                self._rotate_locked()
            lines = self._write_locked(records)
        finally:
            self._unlock()
        return lines

    def _seal_record(self) -> dict[str, Any]:
        assert self._seal_key is not None  # noqa: S101 - checked by the caller
        return {
            "time": now_local(),
            "run": self.run_id,
            "type": "seal",
            "algorithm": "ed25519",
            "key": self._seal_key.fingerprint,
            "public_key": base64.b64encode(self._seal_key.raw_public).decode("ascii"),
        }

    def _write_locked(self, records: list[dict[str, Any]]) -> list[bytes]:
        """Chain ``records`` (and a seal over them) onto the tail; one write, one fsync."""
        tail = _read_tail(self._fd)
        out = bytearray()
        seq, prev = tail.seq, tail.prev
        if tail.torn is not None:
            # A crash tore the last line: keep it, end it, and say so.
            if tail.newline_missing:
                out += b"\n"
            records = [
                {
                    "time": now_local(),
                    "run": self.run_id,
                    "type": "torn-line",
                    "torn_bytes": len(tail.torn),
                    "note": "previous line incomplete (crash while writing); chained over",
                },
                *records,
            ]
        if self._seal_key is not None:
            # Every commit ends in a seal, in the same write: a complete line
            # after the last seal is one that no sealing writer wrote.
            records = [*records, self._seal_record()]
        lines: list[bytes] = []
        for record in records:
            seq += 1
            full = {"seq": seq, "prev": prev, **record}
            if full.get("type") == "seal" and self._seal_key is not None:
                full["sig"] = self._seal_key.sign(full)
            line = canonical(full)
            prev = line_hash(line)
            out += line + b"\n"
            lines.append(line)
        self._durable_append(bytes(out))
        self._last = (seq, prev)
        self._last_lines = lines
        if self._logger is not None:
            for line in lines:
                self._logger.info(line.decode())
        return lines

    def _durable_append(self, data: bytes) -> None:
        """All of ``data`` on disk after the current end, or nothing: a short or
        failed write is cut off again, so the chain stays as it was."""
        size = os.fstat(self._fd).st_size
        try:
            write_all(self._fd, data, write=self._write)
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
                os.fsync(self._fd)
            self._broken = AuditWriteError(
                f"audit log not writable ({exc.strerror or exc})",
                subject=str(self.path),
                hint="free space on its disk (or use another --audit-log), then run again; "
                "documents whose record could not be written were not published",
            )
            raise self._broken from None

    @property
    def broken(self) -> AuditWriteError | None:
        """The write failure that stopped this log, if any."""
        return self._broken

    def rotate(self) -> Path:
        """Start a new file whose first record carries the hash of the old file's last line;
        returns the old file's new name."""
        self._lock()
        try:
            archive = self._rotate_locked()
            if self._seal_key is not None:
                self._write_locked([])
            return archive
        finally:
            self._unlock()

    def _rotate_locked(self) -> Path:
        tail = _read_tail(self._fd)
        if tail.torn is not None:
            self._write_locked([])
            tail = _read_tail(self._fd)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        archive = self.path.with_name(f"{self.path.stem}.{stamp}{self.path.suffix}")
        record = {
            "seq": tail.seq + 1,
            "prev": tail.prev,
            "time": now_local(),
            "run": self.run_id,
            "type": "rotated",
            "previous_file": archive.name,
            "previous_last_seq": tail.seq,
        }
        line = canonical(record)
        tmp = temp_name(self.path)
        try:
            fd = create_exclusive(tmp, 0o600)
            try:
                write_all(fd, line + b"\n", write=self._write)
                os.fsync(fd)
            finally:
                os.close(fd)
            # Link first, then replace: the log's name always points at a complete file.
            os.link(self.path, archive)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._broken = AuditWriteError(
                f"cannot rotate the audit log ({exc.strerror or exc})", subject=str(self.path)
            )
            raise self._broken from None
        fsync_directory(self.path.parent)
        if self._logger is not None:
            self._logger.info(line.decode())
        self._last = (tail.seq + 1, line_hash(line))
        # Hold the lock on the new file from here on (the caller unlocks it).
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = self._open()
        self._lock()
        return archive

    def close(self) -> None:
        """Commit what is queued, time-stamp the run's last seal if asked, copy it
        to the anchor, and close."""
        try:
            self.commit()
            if self._seal_key is not None and self._last is not None:
                if self.spec.tsa is not None:
                    self._append([self._timestamp(self._last)])
                self._write_anchor(
                    [
                        line
                        for line in self._last_lines
                        if (parse_record(line) or {}).get("type") in ("seal", "seal-timestamp")
                    ]
                )
        finally:
            os.close(self._fd)
            if self._syslog is not None:
                if self._syslog.failures:
                    self._warn(f"{self._syslog.failures} audit record(s) not sent to syslog")
                self._syslog.close()

    def discard(self) -> None:
        """Close without writing what is queued (the log could not be written)."""
        self._pending = []
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._syslog is not None:
            self._syslog.close()

    def _timestamp(self, last: tuple[int, str]) -> dict[str, Any]:
        from signkit.pki.timestamps import request_timestamp

        seq, digest = last
        record: dict[str, Any] = {
            "time": now_local(),
            "run": self.run_id,
            "type": "seal-timestamp",
            "covers_seq": seq,
            "covers_sha256": digest,
            "tsa": self.spec.tsa.url,
        }
        try:
            token = request_timestamp(self.spec.tsa, timestamp_message(seq, digest))
        except TimestampError as exc:
            self._warn(f"audit seal not time-stamped: {exc}")
            record["error"] = str(exc)
            return record
        info = token["content"]["encap_content_info"]["content"].parsed
        record["gen_time"] = info["gen_time"].native.isoformat()
        record["token"] = base64.b64encode(token.dump()).decode("ascii")
        return record

    def _write_anchor(self, lines: list[bytes]) -> None:
        anchor = self.spec.anchor or default_anchor_path(self.path)
        try:
            fd = os.open(anchor, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            self._warn(f"{anchor}: cannot write the audit anchor ({exc.strerror})")
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            write_all(fd, b"".join(line + b"\n" for line in lines), write=self._write)
            os.fsync(fd)
        except OSError as exc:
            self._warn(f"{anchor}: cannot write the audit anchor ({exc.strerror or exc})")
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def timestamp_message(seq: int, digest: str) -> bytes:
    """What the RFC 3161 time-stamp of a run's last line covers."""
    return f"signkit-audit-line-v1\n{seq}\n{digest}".encode()


def run_identity() -> dict[str, Any]:
    """Who and where, for the run record."""
    from signkit import __version__

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {
        "os_user": user,
        "uid": os.getuid(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "signkit_version": __version__,
    }
