"""`signkit verify` as a job: discover, verify in a process pool, report, audit.

Verification needs no token, so the signing engine's token thread and
output stages do not apply; this job reuses its inputs, report schema,
worker set-up (fork after the validation stack is imported, die with the
parent) and audit records.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signkit import __version__
from signkit.audit.log import AuditLog, run_identity
from signkit.errors import ExitCode, SignkitError, UsageError, report_bug
from signkit.jobs.engine import Events
from signkit.jobs.inputs import DocumentTask, Shard, discover, without_detached_data
from signkit.jobs.report import BatchReport, DocumentResult, Spill, Status, met_a_bug
from signkit.signals import catch_stop_signals
from signkit.verify.policy import VerifyPolicy
from signkit.verify.verdict import DocumentVerdict, Indication
from signkit.workers import Limits, WorkerPool, limited_call, worker_init

EXTENSIONS = (".pdf", ".xml", ".edxml", ".p7s", ".p7m")


@dataclass(frozen=True, kw_only=True)
class VerifyJobSpec:
    """Everything `signkit verify` was asked to do."""

    inputs: tuple[str, ...]
    """Files, directories, globs."""
    recursive: bool = False
    """Descend into directories."""
    manifest: Path | None = None
    """CSV/JSONL manifest (column: input)."""
    shard: Shard | None = None
    """Only this part of the documents (--shard K/N)."""
    policy: VerifyPolicy = field(default_factory=VerifyPolicy)
    """Trust, revocation, time and algorithm policy."""
    jobs: int = 0
    """Worker processes (0 = one per CPU)."""
    fail_fast: bool = False
    """Stop at the first document that is not PASSED."""
    dry_run: bool = False
    """List the documents only."""
    audit_path: Path | None = None
    """Audit log (None = no audit)."""
    command_line: tuple[str, ...] = ()
    """Options, for the audit run record."""
    limits: Limits = field(default_factory=Limits)
    """Memory and time budget of each document (verified in a worker process)."""
    thumbnails: bool = False
    """Render each signed PDF page for a people's report (in the worker)."""


@dataclass(kw_only=True)
class VerifyReport(BatchReport):
    """A verification run: exit code from the verdicts (0 / 1 FAILED / 6 INDETERMINATE)."""

    etsi: list[Any] = field(default_factory=list)
    """ETSI TS 119 102-2 report parts of the PDF signatures (--report-format etsi)."""
    thumbnails: dict[str, list[Any]] = field(default_factory=dict)
    """Rendered signed pages per input, for people's reports."""
    store: Spill | None = None
    """Where each document's verdict waits for the end of the run (None: in memory)."""

    def verdicts(self) -> dict[str, int]:
        """Documents per indication."""
        counts = {i.value: 0 for i in Indication}
        for doc in self.documents:
            if doc.verdict is not None:
                counts[doc.verdict["indication"]] += 1
        return counts

    def exit_code(self) -> int:
        """Run errors win; then a document that met a bug in signkit -> 70; any
        FAILED (or unreadable) -> 1; worst INDETERMINATE -> 6."""
        if self.run_error is not None:
            return int(self.run_error.exit_code)
        failed = [d for d in self.documents if d.status is Status.FAILED]
        if met_a_bug(d.error_code for d in failed):
            return int(ExitCode.INTERNAL)
        if failed:
            return int(ExitCode.DOCUMENTS_FAILED)
        counts = self.verdicts()
        if counts["FAILED"]:
            return int(ExitCode.DOCUMENTS_FAILED)
        if counts["INDETERMINATE"]:
            return int(ExitCode.INDETERMINATE)
        return int(ExitCode.OK)

    def _json(self, documents: Any) -> dict[str, Any]:
        """The shared report plus totals per indication."""
        data = super()._json(documents)
        data["verdicts"] = self.verdicts()
        return data


def plan(spec: VerifyJobSpec, *, skipped: list[Path] | None = None) -> list[DocumentTask]:
    """Discover the documents to verify (the other files of a directory go
    into ``skipped``, for -v)."""
    tasks = discover(
        spec.inputs,
        recursive=spec.recursive,
        extensions=EXTENSIONS,
        suffix="",
        manifest=spec.manifest,
        skipped=skipped,
    )
    tasks = without_detached_data(tasks)
    if not tasks:
        raise UsageError("no input documents", hint="name files, directories or --manifest")
    return spec.shard.select(tasks, lambda t: t.input) if spec.shard else tasks


def detect_format(path: Path) -> str:
    """pdf, xml, edxml (a package) or cms, by the first bytes (the extension may lie)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except OSError:
        return _by_extension(path)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"<"):
        from signkit.formats.edxml import looks_like_edxml

        return "edxml" if looks_like_edxml(head) else "xml"
    if _CMS_SIGNED_DATA in head[:32] or stripped.startswith(
        (b"-----BEGIN CMS", b"-----BEGIN PKCS7")
    ):
        return "cms"
    if b"%PDF-" in head:
        return "pdf"
    return _by_extension(path)


def _by_extension(path: Path) -> str:
    """What a file should be when its first bytes say nothing (its errors name that)."""
    suffix = path.suffix.lower()
    if suffix in (".p7s", ".p7m"):
        return "cms"
    return "xml" if suffix == ".xml" else "pdf"


# ContentInfo's contentType id-signedData, within a .p7s/.p7m's first bytes.
_CMS_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")


def verify_document(
    path: str, policy: VerifyPolicy, thumbnails: bool = False
) -> DocumentVerdict | SignkitError:
    """Worker: verify one document; errors about the file are returned, not raised."""
    verdict = _verify_document(path, policy)
    if thumbnails and isinstance(verdict, DocumentVerdict) and verdict.format == "pdf":
        from signkit.verify.thumbnails import render

        try:
            names = [s.name for s in verdict.signatures]
            verdict.thumbnails = render(Path(path), names, policy.password)
        except MemoryError:
            raise
        except Exception:  # noqa: S110 - a page that cannot be drawn leaves the report without it
            pass
    return verdict


def _verify_document(path: str, policy: VerifyPolicy) -> DocumentVerdict | SignkitError:
    try:
        fmt = detect_format(Path(path))
        if fmt == "edxml":
            from signkit.verify.edxml import verify_edxml

            return verify_edxml(Path(path), policy)
        if fmt == "xml":
            from signkit.verify.xml import verify_xml

            return verify_xml(Path(path), policy)
        if fmt == "cms":
            from signkit.verify.cms import verify_cms

            return verify_cms(Path(path), policy)
        from signkit.verify.pdf import verify_pdf

        return verify_pdf(Path(path), policy)
    except SignkitError as exc:
        return exc
    except MemoryError:
        raise  # the worker's budget: limited_call says so
    except Exception as exc:  # a bug or a library's surprise: report it, picklable
        # (a library exception may hold unpicklable state, e.g. lxml's error log)
        report_bug(exc, path)
        raise RuntimeError(f"{type(exc).__name__}: {str(exc)[:300]}") from None


def quiet_libraries() -> None:
    """pyHanko logs validation failures with tracebacks; the verdicts already say it."""
    import logging

    for name in ("pyhanko", "pyhanko_certvalidator"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


def preload() -> None:
    """Import the validation stack (before the workers fork, so they share it)."""
    from signkit.verify import pdf, xml

    quiet_libraries()
    pdf.preload()
    xml.preload()


def verify_documents(
    spec: VerifyJobSpec,
    *,
    events: Events,
    report: VerifyReport,
    tasks: list[DocumentTask] | None = None,
    warn: Callable[[str], None] = lambda _text: None,
) -> VerifyReport:
    """Verify every document; results (with verdicts) land in ``report``."""
    tasks = plan(spec) if tasks is None else tasks
    if spec.policy.at is None and spec.policy.now is None:
        # one validation instant for the whole batch: every document is judged alike
        spec = replace(spec, policy=replace(spec.policy, now=datetime.now(UTC)))
    results = [DocumentResult(input=str(t.input), output=None) for t in tasks]
    report.documents.extend(results)
    if spec.dry_run:
        report.dry_run = True
        return report
    if not spec.policy.anchors:
        warn(
            "no trust anchors (--trust FILE|DIR or --trust-system): no signer can be "
            "trusted, so no signature can pass"
        )
    audit = AuditLog(spec.audit_path) if spec.audit_path is not None else None
    if audit is not None:
        audit.add(
            {
                "type": "run-start",
                "command": "verify",
                "version": __version__,
                "options": list(spec.command_line),
                **run_identity(),
            }
        )
    preload()
    # Always in worker processes, even for one document: a hostile file meets
    # its memory and time budget there, never in this process.
    workers = max(1, min(spec.jobs or os.cpu_count() or 2, len(tasks)))
    etsi: list[list[Any]] = [[] for _ in tasks]
    try:
        _run_pool(spec, tasks, results, workers, audit, events, etsi, report)
    except KeyboardInterrupt:
        for r in results:
            if r.status is Status.PLANNED:
                r.status, r.reason = Status.NOT_ATTEMPTED, "interrupted"
        raise
    finally:
        for r in results:
            if r.status is Status.PLANNED:
                r.status, r.reason = Status.NOT_ATTEMPTED, "batch stopped (--fail-fast)"
        report.finished = datetime.now(UTC)
        report.etsi = [part for doc in etsi for part in doc]
        if audit is not None:
            audit.add(
                {
                    "type": "run-end",
                    "command": "verify",
                    "totals": report.totals(),
                    "verdicts": report.verdicts(),
                    "exit_code": report.exit_code(),
                }
            )
            audit.close()
    return report


def _run_pool(
    spec: VerifyJobSpec,
    tasks: list[DocumentTask],
    results: list[DocumentResult],
    workers: int,
    audit: AuditLog | None,
    events: Events,
    etsi: list[list[Any]],
    report: VerifyReport,
) -> None:
    # fork: the workers inherit the imported validation stack (no warm-up).
    # --fail-fast: no more in flight than workers, so a stop leaves the rest untouched.
    lookahead = workers if spec.fail_fast else workers * 8
    queue = list(enumerate(tasks))[::-1]
    pool = WorkerPool(workers, initializer=worker_init)
    in_flight: dict[Future[Any], int] = {}
    stop = False
    # SIGINT/SIGTERM as a flag, checked between waits: a stop ends the run at
    # once, whatever a worker is busy with.
    stopping = catch_stop_signals()
    try:
        while queue or in_flight:
            stopping.check()
            while queue and not stop and len(in_flight) < lookahead:
                index, task = queue.pop()
                future = pool.submit_timed(
                    spec.limits.seconds,
                    limited_call,
                    spec.limits,
                    verify_document,
                    str(task.input),
                    spec.policy,
                    spec.thumbnails,
                )
                in_flight[future] = index
            if not in_flight:
                break
            done, _ = wait(list(in_flight), timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                index = in_flight.pop(future)
                try:
                    value = future.result()
                except Exception as exc:  # a bug, or a worker that died
                    results[index].fail(exc)
                    events.document_done(results[index])
                    stop = stop or spec.fail_fast
                    continue
                if isinstance(value, DocumentVerdict) and value.thumbnails:
                    report.thumbnails[results[index].input] = value.thumbnails
                if (
                    _record(results[index], value, audit, events, etsi[index], report.store)
                    and spec.fail_fast
                ):
                    stop = True
        pool.shutdown(wait=True)
    except BaseException:
        for future in in_flight:
            future.cancel()
        pool.kill()
        pool.shutdown(wait=False)
        raise
    finally:
        stopping.restore()


# What counts and filters read of every verdict, held in memory beside the spill.
_KNOWN = ("indication", "format")


def _shared(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


def _record(
    result: DocumentResult,
    value: DocumentVerdict | SignkitError,
    audit: AuditLog | None,
    events: Events,
    etsi: list[Any],
    store: Spill | None = None,
) -> bool:
    """Store one outcome (its verdict in ``store``, if given); True when it is
    not PASSED (for --fail-fast)."""
    if isinstance(value, SignkitError):
        result.fail(value)
        if audit is not None:
            audit.add(
                {
                    "type": "verify-result",
                    "input": result.input,
                    "status": "failed",
                    "error": result.error_message,
                }
            )
        events.document_done(result)
        return True
    result.status = Status.VERIFIED
    result.sha256_before = value.sha256
    etsi.extend(value.etsi)
    verdict = value.to_json()
    result.verdict = verdict if store is None else store.keep(verdict, _KNOWN)
    # A batch repeats its few sentences and signers: one string each, not one
    # a document.
    result.reason = _shared(value.sentence)
    if value.signatures:
        first = value.signatures[0]
        result.signer_sha256 = _shared(first.signer_sha256)
        result.level = _shared(first.level)
        result.signing_time = first.timestamp_time or first.claimed_signing_time
    if audit is not None:
        audit.add(
            {
                "type": "verify-result",
                "format": value.format,
                "input": result.input,
                "sha256": value.sha256,
                "indication": value.indication.value,
                "sub_indication": value.sub_indication.value,
                "signers": [s.signer_sha256 for s in value.signatures],
            }
        )
    events.document_done(result)
    return value.indication is not Indication.PASSED
