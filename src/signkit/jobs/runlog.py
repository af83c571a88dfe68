"""The run-level audit records every signing job writes, whatever the format."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signkit.audit.log import AuditLog, AuditSpec, run_identity
from signkit.errors import AuditWriteError, SignkitError
from signkit.fsio import Writer
from signkit.jobs.report import BatchReport
from signkit.tokens.model import TokenInfo


def token_record(token: TokenInfo) -> dict[str, Any]:
    """A token's identity for audit records (no secrets exist in it)."""
    return token.audit_record()


class RunAudit:
    """run-start, login-failed and run-end records of one job (the engine writes
    the per-document ones); a no-op without an audit log."""

    def __init__(
        self,
        path: Path | None,
        spec: AuditSpec | None,
        *,
        command: str,
        options: Sequence[str],
        warn: Callable[[str], None],
        write: Writer | None = None,
    ) -> None:
        self.log = (
            AuditLog(path, spec, warn=warn, write=write or os.write) if path is not None else None
        )
        self.identity = {"command": command, "options": list(options), **run_identity()}

    def login_failed(self, token: TokenInfo, exc: SignkitError) -> None:
        """The token's identity and what it said; never the PIN."""
        if self.log is not None:
            self.log.add(
                {
                    "type": "login-failed",
                    **self.identity,
                    "token": token_record(token),
                    "error_class": type(exc).__name__,
                    "error": str(exc),
                }
            )
            self.log.commit()

    def run_start(self, report: BatchReport, key: Any, check: Any, **extra: Any) -> None:
        """Who signs with what: token, signer certificate, pre-signing revocation evidence."""
        if self.log is not None:
            self.log.add(
                {
                    "type": "run-start",
                    **self.identity,
                    "started": report.started.astimezone().isoformat(),
                    "token": token_record(key.token) if key.token else key.token_name,
                    "signer": {
                        **report.signer,
                        "revocation_evidence": check.evidence(ocsp_der=True),
                    },
                    **extra,
                }
            )
            self.log.commit()

    def run_start_without_token(self, report: BatchReport, **extra: Any) -> None:
        """A run that needs no key (extend): who ran it, when, with what."""
        if self.log is not None:
            self.log.add(
                {
                    "type": "run-start",
                    **self.identity,
                    "started": report.started.astimezone().isoformat(),
                    **extra,
                }
            )
            self.log.commit()

    def run_end(self, report: BatchReport) -> None:
        """Totals and outcome; closes (and seals) the log. A log that could not be
        written is only closed: the run already failed on it."""
        if self.log is not None:
            report.finished = datetime.now(UTC)
            if self.log.broken is not None:
                self.log.discard()
                return
            self.log.add(
                {
                    "type": "run-end",
                    **self.identity,
                    "started": report.started.astimezone().isoformat(),
                    "finished": report.finished.astimezone().isoformat(),
                    "totals": report.totals(),
                    "exit_code": report.exit_code(),
                    "error": None if report.run_error is None else str(report.run_error),
                }
            )
            try:
                self.log.close()
            except AuditWriteError as exc:
                if report.run_error is None:
                    report.run_error = exc
