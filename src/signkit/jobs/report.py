"""The document-result schema shared by every batch command (--json, --report)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from signkit.errors import ExitCode, SignkitError

SCHEMA_VERSION = 1


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
    signer_sha256: str | None = None
    level: str | None = None
    signing_time: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    verdict: dict[str, Any] | None = None

    def fail(self, exc: BaseException) -> None:
        """Record a failure without losing the error's class, code and text."""
        self.status = Status.FAILED
        self.error_class = type(exc).__name__
        if isinstance(exc, SignkitError):
            self.error_code = int(exc.exit_code)
            self.error_message = str(exc)
        else:
            self.error_code = int(ExitCode.INTERNAL)
            self.error_message = f"internal error ({type(exc).__name__}: {str(exc)[:200]})"


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

    def totals(self) -> dict[str, int]:
        """Count per status."""
        counts = {s.value: 0 for s in Status}
        for doc in self.documents:
            counts[doc.status.value] += 1
        counts["total"] = len(self.documents)
        return counts

    def exit_code(self) -> int:
        """Run-level errors (3-5) win; then 1 if any document failed."""
        if self.run_error is not None:
            return int(self.run_error.exit_code)
        if any(d.status is Status.FAILED for d in self.documents):
            return int(ExitCode.DOCUMENTS_FAILED)
        return int(ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        """The machine report."""
        finished = self.finished or datetime.now(UTC)
        docs = []
        for d in self.documents:
            item = asdict(d)
            item["status"] = d.status.value
            docs.append(item)
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
            "documents": docs,
        }

    def write(self, path: Path) -> None:
        """Write the report atomically."""
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, ensure_ascii=False, indent=2)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
