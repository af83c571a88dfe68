"""Read the audit log back: document outcomes joined with their run, filtered."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from signkit.audit.log import parse_record
from signkit.audit.verify import chain_files
from signkit.errors import InputError, UsageError

COLUMNS = (
    "time",
    "run",
    "os_user",
    "host",
    "type",
    "outcome",
    "input",
    "output",
    "format",
    "level",
    "size_before",
    "sha256_before",
    "sha256_after",
    "signer_subject",
    "signer_sha256",
    "token_serial",
    "error_class",
    "error",
)
"""Columns of `audit show` rows (CSV header, JSON keys)."""


@dataclass(frozen=True, kw_only=True)
class ShowFilter:
    """Which rows `audit show` keeps."""

    since: datetime | None = None
    """Records at or after this instant."""
    until: datetime | None = None
    """Records before this instant."""
    user: str | None = None
    """OS user of the run."""
    file: str | None = None
    """Input or output path: a substring, or a glob on the path or its name."""
    cert: str | None = None
    """Signer certificate: SHA-256 prefix or a substring of its subject."""
    outcome: str | None = None
    """signed, failed, skipped, not-attempted, login-failed."""
    all_records: bool = False
    """Every record, not only document results and login failures."""


def parse_time(text: str, option: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{option}: not an ISO 8601 date or time (e.g. 2026-03-12 or 2026-03-12T09:00)",
            subject=text,
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _records(path: Path) -> Iterator[dict[str, Any]]:
    files, _missing = chain_files(path)
    for file in files:
        try:
            with file.open("rb") as fh:
                for line in fh:
                    record = parse_record(line.rstrip(b"\n"))
                    if record is not None:
                        yield record
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", subject=str(file)) from None


def _matches_file(pattern: str, *paths: Any) -> bool:
    for p in paths:
        if not p:
            continue
        text = str(p)
        if pattern in text or fnmatch.fnmatch(text, pattern):
            return True
        if fnmatch.fnmatch(Path(text).name, pattern):
            return True
    return False


def show_rows(path: Path, flt: ShowFilter) -> list[dict[str, Any]]:
    """Rows for `audit show`: each document result (or every record) with its run's
    user, host and signer, filtered."""
    runs: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for rec in _records(path):
        kind = rec.get("type")
        run_id = str(rec.get("run", ""))
        if kind in ("run-start", "login-failed", "run-end"):
            info = runs.setdefault(run_id, {})
            for key in ("os_user", "host"):
                if rec.get(key):
                    info[key] = rec[key]
            signer = rec.get("signer")
            if isinstance(signer, dict):
                info["signer_subject"] = signer.get("subject")
                info["signer_sha256"] = signer.get("sha256")
            token = rec.get("token")
            if isinstance(token, dict):
                info["token_serial"] = token.get("serial")
        if not flt.all_records and kind not in ("document-result", "login-failed"):
            continue
        run = runs.get(run_id, {})
        outcome = rec.get("status") or ("login-failed" if kind == "login-failed" else None)
        row = {
            "time": rec.get("time"),
            "run": run_id,
            "os_user": rec.get("os_user") or run.get("os_user"),
            "host": rec.get("host") or run.get("host"),
            "type": kind,
            "outcome": outcome,
            "input": rec.get("input"),
            "output": rec.get("output"),
            "format": rec.get("format"),
            "level": rec.get("level"),
            "size_before": rec.get("size_before"),
            "sha256_before": rec.get("sha256_before"),
            "sha256_after": rec.get("sha256_after"),
            "signer_subject": run.get("signer_subject"),
            "signer_sha256": run.get("signer_sha256"),
            "token_serial": run.get("token_serial"),
            "error_class": rec.get("error_class"),
            "error": rec.get("error"),
        }
        if _keep(row, flt):
            rows.append(row)
    return rows


def _keep(row: dict[str, Any], flt: ShowFilter) -> bool:
    if flt.since is not None or flt.until is not None:
        try:
            moment = datetime.fromisoformat(str(row["time"]))
        except ValueError:
            return False
        if flt.since is not None and moment < flt.since:
            return False
        if flt.until is not None and moment >= flt.until:
            return False
    if flt.user is not None and row["os_user"] != flt.user:
        return False
    if flt.file is not None and not _matches_file(flt.file, row["input"], row["output"]):
        return False
    if flt.cert is not None:
        sha = str(row["signer_sha256"] or "").lower()
        subject = str(row["signer_subject"] or "")
        wanted = flt.cert.replace(":", "").lower()
        if not ((sha and sha.startswith(wanted)) or flt.cert.lower() in subject.lower()):
            return False
    return flt.outcome is None or row["outcome"] == flt.outcome
