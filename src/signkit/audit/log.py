"""Append-only JSON Lines audit log; each line carries the SHA-256 of the previous one.

Writers buffer records and commit them in groups: take an exclusive lock,
read the current tail (another run may have appended), chain, write, fsync,
unlock. So concurrent runs never interleave a record or fork the chain, and
a batch pays one fsync per group, not per document. A torn last line (a
crash mid-write) is detected by the next writer, marked, and chained over.
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signkit.errors import ConfigError

GENESIS = "0" * 64
_TAIL_CHUNK = 64 * 1024


def default_audit_path() -> Path:
    """$XDG_STATE_HOME/signkit/audit.jsonl."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "signkit" / "audit.jsonl"


def line_hash(line: bytes) -> str:
    """Chain hash of one line (without its newline)."""
    return hashlib.sha256(line).hexdigest()


def now_local() -> str:
    """UTC instant with the local offset, ISO 8601 (e.g. 2026-03-12T09:41:07+07:00)."""
    return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")


def _tail(fd: int) -> tuple[bytes, bool]:
    """(last line, ends with newline) of the file behind ``fd``."""
    size = os.fstat(fd).st_size
    if size == 0:
        return b"", True
    start = max(0, size - _TAIL_CHUNK)
    while True:
        data = os.pread(fd, size - start, start)
        complete = data.endswith(b"\n")
        body = data[:-1] if complete else data
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            return body[cut + 1 :], complete
        start = max(0, start - _TAIL_CHUNK)


class AuditLog:
    """One audit log file, shared safely by concurrent runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[dict[str, Any]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot open the audit log ({exc.strerror})",
                subject=str(path),
                hint="use --audit-log PATH, or --no-audit",
            ) from None

    def add(self, record: Mapping[str, Any]) -> None:
        """Queue a record; it becomes durable at the next ``commit``."""
        self._pending.append({"time": now_local(), **record})

    def commit(self) -> None:
        """Chain and fsync every queued record under an exclusive lock."""
        if not self._pending:
            return
        records, self._pending = self._pending, []
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            last, complete = _tail(self._fd)
            out = bytearray()
            prev = GENESIS
            seq = 0
            if last:
                prev = line_hash(last)
                try:
                    seq = int(json.loads(last)["seq"])
                except (ValueError, KeyError, TypeError):
                    seq = -1
                if not complete or seq < 0:
                    # A crash tore the last line: keep it, end it, and say so.
                    if not complete:
                        out += b"\n"
                    records.insert(
                        0,
                        {
                            "time": now_local(),
                            "type": "torn-line",
                            "note": "previous line incomplete (crash while writing)",
                        },
                    )
                    seq = max(seq, 0)
            for record in records:
                seq += 1
                line = json.dumps(
                    {"seq": seq, "prev": prev, **record},
                    ensure_ascii=False,
                    sort_keys=True,
                    separators=(",", ":"),
                    default=str,
                ).encode()
                prev = line_hash(line)
                out += line + b"\n"
            os.write(self._fd, bytes(out))
            os.fsync(self._fd)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Commit what is queued and close."""
        try:
            self.commit()
        finally:
            os.close(self._fd)


def run_identity() -> dict[str, str]:
    """Who and where, for the run record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"os_user": user, "host": socket.gethostname()}
