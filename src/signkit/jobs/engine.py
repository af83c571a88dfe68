"""The one batch engine every format plugs into.

Pipeline: worker processes prepare documents while the main process holds
the only token session and signs, serially, whatever is ready; workers then
finish each document into a complete, checked temp file. The main process
syncs the temp files (a few threads at once, so they share the file
system's journal commits), commits the audit records of a group of finished
documents with one fsync, and only then renames their temp files into place
(and syncs the directories). So no output is ever visible without its
durable record, nor before its own data is durable.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue as queue_module
import time
from collections import deque
from concurrent.futures import (
    Executor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from signkit.audit.log import AuditLog
from signkit.errors import AuditWriteError, ExitCode, OutputError, SignkitError, TokenError
from signkit.formats.plugin import BatchFormat, OutputState, Stages, Unchanged
from signkit.fsio import fsync_directory, fsync_file
from signkit.jobs.batches import Batches, completed_futures
from signkit.jobs.outputs import InputLock, PlannedDoc, publish, temp_path
from signkit.jobs.report import BatchReport, DocumentResult, Status
from signkit.signals import Interrupted, catch_stop_signals
from signkit.workers import Limits


@dataclass(frozen=True, kw_only=True)
class EngineSpec:
    """Batch behaviour chosen by the user."""

    fail_fast: bool = False
    """Stop at the first failed document."""
    force: bool = False
    """Overwrite existing outputs."""
    resign: bool = False
    """Sign again documents whose output already carries our signature."""
    lookahead: int = 32
    """Documents in flight at once (bounds memory and open files)."""
    group_size: int = 64
    """Finished documents committed (audit fsync, rename) together at most."""
    group_delay: float = 0.05
    """Seconds a finished document may wait for its group."""
    batch: int = 8
    """Worker calls sent to a worker process in one task at most."""
    limits: Limits = field(default_factory=Limits)
    """Memory and time budget of each document in a worker."""


class Events(Protocol):
    """Progress callbacks (the CLI draws a progress bar with them)."""

    def document_done(self, result: DocumentResult) -> None:
        """One document reached a final status."""


class SignFn(Protocol):
    def __call__(self, data: bytes) -> bytes: ...


@dataclass
class _Doc:
    planned: PlannedDoc
    result: DocumentResult
    lock: InputLock
    temp: Path
    prepared: Any = None
    finished: Any = None
    sync: Future[None] | None = None
    """The temp file's fsync, when the engine does it."""


@dataclass
class _Run:
    report: BatchReport
    audit: AuditLog | None
    events: Events
    signer_sha256: str
    format_name: str
    pending_commit: list[_Doc] = field(default_factory=list)
    oldest_pending: float = 0.0
    indices: dict[int, int] = field(default_factory=dict)
    """Position in the batch of each DocumentResult (by id), named in audit records."""
    audit_error: AuditWriteError | None = None
    """The audit log could not be written: nothing more is published."""
    syncer: ThreadPoolExecutor | None = None
    """Threads fsyncing finished temp files while the batch goes on."""

    def record(self, kind: str, doc: _Doc | DocumentResult, **extra: Any) -> None:
        if self.audit is None:
            return
        r = doc.result if isinstance(doc, _Doc) else doc
        self.audit.add(
            {
                "type": kind,
                "doc": self.indices[id(r)],
                "format": self.format_name,
                "input": r.input,
                "output": r.output,
                "level": r.level,
                **extra,
            }
        )

    def final(self, doc: _Doc) -> None:
        doc.lock.release()
        self.events.document_done(doc.result)


def run_batch(
    *,
    docs: list[PlannedDoc],
    plugin: BatchFormat,
    stages: Stages,
    sign: SignFn | None,
    executor: Executor,
    report: BatchReport,
    audit: AuditLog | None,
    events: Events,
    spec: EngineSpec,
    signer_sha256: str,
    workers: int = 2,
) -> None:
    """Sign every planned document; results land in ``report``. Without
    ``sign`` (extending signatures needs no token) a prepared document goes
    straight to its finish stage.

    A TokenError, an audit log that cannot be written, or a stop signal
    (SIGINT, SIGTERM) ends the batch: finished documents are still published
    when their records are durable, in-flight temp files removed, the rest
    marked not attempted; the error is re-raised for the caller's exit code.
    """
    run = _Run(report, audit, events, signer_sha256, plugin.name)
    # fsync waits on the disk without the GIL: a few at once overlap the
    # signing and are committed by the file system together.
    run.syncer = ThreadPoolExecutor(_SYNC_THREADS, thread_name_prefix="signkit-sync")
    pool = Batches(executor, workers=workers, size=spec.batch, limits=spec.limits)
    queue: deque[tuple[int, PlannedDoc]] = deque(enumerate(docs))
    results = [
        DocumentResult(
            input=str(d.input),
            output=str(d.output),
            level=d.options.level,
            options=dict(d.task.options),
        )
        for d in docs
    ]
    report.documents.extend(results)
    run.indices = {id(r): i for i, r in enumerate(results)}
    in_flight: dict[Future[Any], tuple[str, _Doc]] = {}
    # Futures report here as they complete, so a loop turn costs the same
    # however many documents are in flight (wait() would hook every future).
    completed: queue_module.SimpleQueue[Future[Any]] = queue_module.SimpleQueue()
    stop = False

    def track(future: Future[Any], stage: str, doc: _Doc) -> None:
        in_flight[future] = (stage, doc)
        future.add_done_callback(completed.put)

    abort: BaseException | None = None

    def submit_next() -> None:
        nonlocal stop
        # Admit in runs of a batch or more, so that worker tasks carry several documents.
        if len(in_flight) > spec.lookahead - min(spec.batch, len(queue)):
            return
        while queue and not stop and len(in_flight) < spec.lookahead:
            index, planned = queue.popleft()
            doc = _admit(planned, results[index], plugin, spec, run)
            if doc is None:
                if results[index].status is Status.FAILED and spec.fail_fast:
                    stop = True
                continue
            item = stages.make_item(index, planned, doc.temp)
            track(pool.submit(stages.prepare, item), "prepare", doc)

    # The one token session lives on one thread, so the main thread does the
    # bookkeeping (results, audit commits, renames) while C_Sign runs.
    token_thread = ThreadPoolExecutor(1, thread_name_prefix="signkit-token")
    # SIGINT and SIGTERM become a flag checked between steps: an exception
    # raised inside concurrent.futures' locking can leave a lock held.
    stopping = catch_stop_signals()
    try:
        submit_next()
        while in_flight:
            stopping.check()
            timeout = _POLL
            if run.pending_commit:
                timeout = min(
                    _POLL, max(0.0, spec.group_delay - (time.monotonic() - run.oldest_pending))
                )
            signing = any(stage == "sign" for stage, _doc in in_flight.values())
            pool.flush(hold=stages.finish if signing else None)
            for future in completed_futures(completed, timeout):
                stage, doc = in_flight.pop(future)
                try:
                    value = future.result()
                except TokenError as exc:
                    _fail(doc, exc, run)  # the document the token failed on
                    raise
                except SignkitError as exc:
                    _fail(doc, exc, run)
                    stop = stop or spec.fail_fast
                    continue
                except Exception as exc:  # a bug or an unexpected library error
                    _fail(doc, exc, run)
                    stop = stop or spec.fail_fast
                    continue
                if stage == "prepare" and isinstance(value, Unchanged):
                    _unchanged(doc, value, run)
                elif stage == "prepare":
                    doc.prepared = value
                    doc.result.sha256_before = value.sha256_before
                    # The intent is queued before the token is asked to sign.
                    run.record(
                        "document-intent",
                        doc,
                        size_before=value.size_before,
                        sha256_before=value.sha256_before,
                    )
                    if sign is None:
                        track(pool.submit(stages.finish, value, b""), "finish", doc)
                    else:
                        track(token_thread.submit(sign, value.to_sign), "sign", doc)
                elif stage == "sign":
                    # A TokenError here is run-level: the token is gone or refused.
                    track(pool.submit(stages.finish, doc.prepared, value), "finish", doc)
                else:
                    doc.finished = value
                    _queue_commit(doc, run)
            if run.pending_commit and (
                len(run.pending_commit) >= spec.group_size
                or time.monotonic() - run.oldest_pending >= spec.group_delay
                or not in_flight
            ):
                _commit_group(run)
            if run.audit_error is not None:
                raise run.audit_error
            submit_next()
        _commit_group(run)
        if run.audit_error is not None:
            raise run.audit_error
    except (TokenError, AuditWriteError, KeyboardInterrupt) as exc:
        abort = exc
    except Exception as exc:  # a bug in signkit: wind down as for any abort
        abort = exc
    finally:
        if abort is not None or in_flight:
            _wind_down(in_flight, token_thread, pool, executor, stages, run)
        for result in results:
            if result.status is Status.PLANNED:
                result.status = Status.NOT_ATTEMPTED
                result.reason = "batch stopped" if (abort or stop) else result.reason
        token_thread.shutdown(wait=True)
        # A stopped batch does not wait for syncs it gave up on (see _commit_group).
        run.syncer.shutdown(wait=abort is None, cancel_futures=True)
        if audit is not None and run.audit_error is None:
            try:
                audit.commit()
            except AuditWriteError as exc:
                run.audit_error = exc
                abort = abort or exc
        stopping.restore()
    if abort is None and stopping.signum is not None:
        abort = Interrupted(stopping.signum)
    if abort is not None:
        raise abort


_WIND_DOWN = 1.5
"""Seconds a stopped batch waits for signed documents to finish (the rest of
the 2 s a person or a service manager waits for a stop)."""


def _wind_down(
    in_flight: dict[Future[Any], tuple[str, _Doc]],
    token_thread: ThreadPoolExecutor,
    pool: Batches,
    executor: Executor,
    stages: Stages,
    run: _Run,
) -> None:
    """Drop what has not been signed; let signed documents finish (within
    ``_WIND_DOWN``) so no signature the token made is thrown away; keep and
    publish what is complete and durable by then; remove every other temp file."""
    deadline = time.monotonic() + _WIND_DOWN
    for future, (stage, _doc) in in_flight.items():
        if stage != "finish":
            future.cancel()
    with contextlib.suppress(Exception):
        token_thread.shutdown(wait=True, cancel_futures=True)
    for future, (stage, doc) in list(in_flight.items()):
        if stage == "sign" and not future.cancelled() and future.exception() is None:
            del in_flight[future]
            with contextlib.suppress(Exception):
                finish = pool.submit(stages.finish, doc.prepared, future.result())
                in_flight[finish] = ("finish", doc)
    pool.flush()
    finishing = [f for f, (stage, _doc) in in_flight.items() if stage == "finish"]
    _done, late = wait(finishing, timeout=max(0.0, deadline - time.monotonic()))
    if late:
        # A worker stuck on a document (a hostile file, a hung read) would
        # hold the stop for ever: end the workers instead.
        kill = getattr(executor, "kill", None)
        if kill is not None:
            kill()
        wait(finishing, timeout=_WIND_DOWN)
    with contextlib.suppress(Exception):
        executor.shutdown(wait=not late, cancel_futures=True)
    for future, (stage, doc) in list(in_flight.items()):
        done = future.done()
        error = None if future.cancelled() or not done else future.exception()
        if stage == "finish" and done and not future.cancelled() and error is None:
            doc.finished = future.result()
            _queue_commit(doc, run)
        elif stage == "finish" and error is not None:
            _fail(doc, error, run)
        else:
            _discard(doc)
            doc.result.status = Status.NOT_ATTEMPTED
            doc.result.reason = "batch stopped"
            run.record("document-result", doc, status="not-attempted")
            run.final(doc)
    in_flight.clear()
    _commit_group(run, deadline=deadline)


_POLL = 0.2

_SYNC_THREADS = 4


def _admit(
    planned: PlannedDoc,
    result: DocumentResult,
    plugin: BatchFormat,
    spec: EngineSpec,
    run: _Run,
) -> _Doc | None:
    """Lock the input and decide: sign, skip (done), leave (locked by another
    run) or fail (an output that is not ours is in the way)."""
    lock = InputLock(planned.input)
    try:
        holder = lock.acquire()
    except SignkitError as exc:
        result.fail(exc)
        _record_failure(run, result)
        run.events.document_done(result)
        return None
    if holder is not None:
        # Another run is signing it now: not done, so this run is no success
        # either; a scheduler retries later (exit 75).
        result.status = Status.NOT_ATTEMPTED
        result.reason = "locked by another signkit run" + (f" (pid {holder})" if holder > 0 else "")
        result.error_class = "InputLockedError"
        result.error_code = int(ExitCode.TEMPFAIL)
        run.record("document-result", result, status="not-attempted", reason=result.reason)
        run.events.document_done(result)
        return None
    doc = _Doc(planned=planned, result=result, lock=lock, temp=temp_path(planned.output))
    out = planned.output
    if not out.exists() or spec.force:
        return doc
    state = plugin.output_state(planned, run.signer_sha256)
    if state is OutputState.DONE and not spec.resign:
        result.status = Status.SKIPPED
        if planned.in_place:
            result.reason = "already signed by this signer"
            run.record("document-result", result, status="skipped", reason=result.reason)
        else:
            result.reason = "output exists and carries this signer's intact signature"
            result.sha256_after = _sha256(out)
            run.record(
                "document-result",
                result,
                status="skipped",
                reason=result.reason,
                sha256_after=result.sha256_after,
            )
        run.final(doc)
        return None
    if state is OutputState.STALE:
        result.reason = "the input changed since its output was signed: signed again"
    elif state is OutputState.FOREIGN and not planned.in_place:
        result.fail(OutputError("output exists (use --force to overwrite)", subject=str(out)))
        _record_failure(run, result)
        run.final(doc)
        return None
    return doc


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _record_failure(run: _Run, result: DocumentResult) -> None:
    run.record(
        "document-result",
        result,
        status="failed",
        sha256_before=result.sha256_before,
        error_class=result.error_class,
        error_code=result.error_code,
        error=result.error_message,
    )


def _unchanged(doc: _Doc, value: Unchanged, run: _Run) -> None:
    """A document the format found nothing to do to: skipped, with its reason."""
    _discard(doc)
    doc.result.status = Status.SKIPPED
    doc.result.reason = value.reason
    doc.result.sha256_before = value.sha256_before
    run.record(
        "document-result",
        doc,
        status="skipped",
        reason=value.reason,
        sha256_before=value.sha256_before,
    )
    run.final(doc)


def _fail(doc: _Doc, exc: BaseException, run: _Run) -> None:
    _discard(doc)
    subject = None
    if isinstance(exc, SignkitError) and exc.subject == str(doc.temp):
        # Its temp file is gone (and never meant anything to a person): the
        # record names the document (a full disk, a self-check that failed).
        subject = str(doc.planned.input)
    doc.result.fail(exc, subject=subject)
    _record_failure(run, doc.result)
    run.final(doc)


def _discard(doc: _Doc) -> None:
    with contextlib.suppress(FileNotFoundError):
        doc.temp.unlink()


def _queue_commit(doc: _Doc, run: _Run) -> None:
    fin = doc.finished
    doc.result.sha256_after = fin.sha256_after
    doc.result.signing_time = fin.signing_time
    doc.result.signer_sha256 = run.signer_sha256
    # Formats may note things a person should see (e.g. a tax code mismatch).
    run.report.warnings.extend(fin.warnings)
    run.record(
        "document-result",
        doc,
        status="signed",
        sha256_before=doc.result.sha256_before,
        sha256_after=fin.sha256_after,
        size_after=fin.size_after,
        level=fin.level,
        signing_time=fin.signing_time,
    )
    if not fin.synced and run.syncer is not None:
        doc.sync = run.syncer.submit(fsync_file, doc.temp)
    elif not fin.synced:
        fsync_file(doc.temp)
    if not run.pending_commit:
        run.oldest_pending = time.monotonic()
    run.pending_commit.append(doc)


def _commit_group(run: _Run, *, deadline: float | None = None) -> None:
    """Audit records durable first, then the outputs appear, then the directories
    sync. When the records cannot be written, the group is not published.
    With a ``deadline`` (a stopped batch), a document whose data is not yet
    durable by then is not published."""
    if not run.pending_commit:
        return
    group, run.pending_commit = run.pending_commit, []
    unsynced: list[_Doc] = []
    for doc in group:
        try:
            if doc.sync is not None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                doc.sync.result(timeout=left)
        except FutureTimeout:
            _discard(doc)
            doc.result.status = Status.NOT_ATTEMPTED
            doc.result.reason = "batch stopped before its output was durable"
            run.record("document-result", doc, status="not-attempted", reason=doc.result.reason)
            run.final(doc)
            unsynced.append(doc)
        except OSError as exc:
            # Not durable: never published. Supersedes its queued `signed` result.
            _discard(doc)
            doc.result.fail(
                OutputError(f"cannot write ({exc.strerror})", subject=str(doc.planned.output))
            )
            _record_failure(run, doc.result)
            run.final(doc)
            unsynced.append(doc)
    if unsynced:
        dropped = {id(doc) for doc in unsynced}
        group = [doc for doc in group if id(doc) not in dropped]
    if run.audit is not None:
        try:
            if run.audit_error is not None:
                raise run.audit_error
            run.audit.commit()
        except AuditWriteError as exc:
            run.audit_error = exc
            for doc in group:
                _discard(doc)
                doc.result.fail(exc)
                doc.result.reason = "audit log not writable: not published"
                run.final(doc)
            return
    directories: set[Path] = set()
    published: list[int] = []
    done = 0
    try:
        for doc in group:
            planned = doc.planned
            try:
                publish(
                    doc.temp, planned.output, replaces=planned.input if planned.in_place else None
                )
                doc.result.status = Status.SIGNED
                directories.add(planned.output.parent)
                published.append(run.indices[id(doc.result)])
            except OSError as exc:
                _discard(doc)
                doc.result.fail(
                    OutputError(f"cannot write ({exc.strerror})", subject=str(planned.output))
                )
                # Supersedes the `signed` result committed just before.
                _record_failure(run, doc.result)
            done += 1
    except BaseException as exc:
        # Whatever stopped the publication here (a bug), the rest of the group
        # is not published: its temp files go, its documents say why.
        for doc in group[done:]:
            _discard(doc)
            doc.result.fail(exc)
            _record_failure(run, doc.result)
            run.final(doc)
        raise
    for directory in directories:
        with contextlib.suppress(OSError):
            fsync_directory(directory)
    if run.audit is not None and published:
        # Durable with the next commit: a `signed` result without this record
        # is one whose rename a crash may have prevented.
        run.audit.add({"type": "published", "docs": published})
    for doc in group:
        run.final(doc)
