"""The one batch engine every format plugs into.

Pipeline: worker processes prepare documents while the main process holds
the only token session and signs, serially, whatever is ready; workers then
finish each document into a complete, fsynced temp file. The main process
commits the audit records of a group of finished documents with one fsync,
and only then renames their temp files into place (and syncs the
directories). So no output is ever visible without its durable record.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import queue as queue_module
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import (
    CancelledError,
    Executor,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from signkit.audit.log import AuditLog
from signkit.errors import OutputError, SignkitError, TokenError
from signkit.formats.finished import Finished
from signkit.jobs.outputs import InputLock, PlannedDoc, fsync_directory, publish, temp_path
from signkit.jobs.report import BatchReport, DocumentResult, Status


@dataclass(frozen=True, kw_only=True)
class Stages:
    """How a format plugs into the engine (module-level functions: they cross processes)."""

    name: str
    """Format name for records ('pdf', 'xml')."""
    prepare: Callable[[Any], Any]
    """Worker: item -> prepared (has .index, .temp, .to_sign, .sha256_before, .size_before)."""
    finish: Callable[[Any, bytes], Finished]
    """Worker: (prepared, signature) -> the finished temp file."""
    make_item: Callable[[int, PlannedDoc, Path], Any]
    """Main: build the picklable work item for one document."""
    already_done: Callable[[Path, str], bool]
    """Main: does this existing output carry an intact signature by this certificate?"""


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
    stages: Stages,
    sign: SignFn,
    executor: Executor,
    report: BatchReport,
    audit: AuditLog | None,
    events: Events,
    spec: EngineSpec,
    signer_sha256: str,
    level: str,
    workers: int = 2,
) -> None:
    """Sign every planned document; results land in ``report``.

    A TokenError or Ctrl-C stops the batch: finished documents are still
    published, in-flight temp files removed, the rest marked not attempted;
    the error is re-raised for the caller's exit code.
    """
    run = _Run(report, audit, events, signer_sha256, stages.name)
    pool = _Batches(executor, workers=workers, size=spec.batch)
    queue: deque[tuple[int, PlannedDoc]] = deque(enumerate(docs))
    results = [
        DocumentResult(
            input=str(d.task.input), output=str(d.output), level=level, options=dict(d.task.options)
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
            doc = _admit(index, planned, results[index], stages, spec, run)
            if doc is None:
                if results[index].status is Status.FAILED and spec.fail_fast:
                    stop = True
                continue
            item = stages.make_item(index, planned, doc.temp)
            track(pool.submit(stages.prepare, item), "prepare", doc)

    # The one token session lives on one thread, so the main thread does the
    # bookkeeping (results, audit commits, renames) while C_Sign runs.
    token_thread = ThreadPoolExecutor(1, thread_name_prefix="signkit-token")
    # Ctrl-C becomes a flag checked between steps: a KeyboardInterrupt raised
    # inside concurrent.futures' locking can leave a future's lock held and
    # deadlock the pool's manager thread.
    interrupted = threading.Event()
    previous_handler = _catch_sigint(interrupted)
    try:
        submit_next()
        while in_flight:
            if interrupted.is_set():
                raise KeyboardInterrupt
            timeout = _POLL
            if run.pending_commit:
                timeout = min(
                    _POLL, max(0.0, spec.group_delay - (time.monotonic() - run.oldest_pending))
                )
            signing = any(stage == "sign" for stage, _doc in in_flight.values())
            pool.flush(hold=stages.finish if signing else None)
            for future in _completed(completed, timeout):
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
                if stage == "prepare":
                    doc.prepared = value
                    doc.result.sha256_before = value.sha256_before
                    # The intent is queued before the token is asked to sign.
                    run.record(
                        "document-intent",
                        doc,
                        size_before=value.size_before,
                        sha256_before=value.sha256_before,
                    )
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
            submit_next()
        _commit_group(run)
    except (TokenError, KeyboardInterrupt) as exc:
        abort = exc
    finally:
        if abort is not None or in_flight:
            # Drop what has not been signed; let signed documents finish so no
            # signature the token made is thrown away; keep what is complete.
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
            wait([f for f, (stage, _doc) in in_flight.items() if stage == "finish"])
            with contextlib.suppress(Exception):
                executor.shutdown(wait=True, cancel_futures=True)
            for future, (stage, doc) in list(in_flight.items()):
                error = None if future.cancelled() else future.exception()
                if stage == "finish" and not future.cancelled() and error is None:
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
            _commit_group(run)
        for result in results:
            if result.status is Status.PLANNED:
                result.status = Status.NOT_ATTEMPTED
                result.reason = "batch stopped" if (abort or stop) else result.reason
        token_thread.shutdown(wait=True)
        if audit is not None:
            audit.commit()
        _restore_sigint(previous_handler)
    if abort is None and interrupted.is_set():
        abort = KeyboardInterrupt()
    if abort is not None:
        raise abort


_POLL = 0.2


def _completed(
    completed: queue_module.SimpleQueue[Future[Any]], timeout: float
) -> list[Future[Any]]:
    """Futures done since the last turn: waits up to ``timeout`` for the first."""
    try:
        done = [completed.get(timeout=timeout)]
    except queue_module.Empty:
        return []
    while True:
        try:
            done.append(completed.get_nowait())
        except queue_module.Empty:
            return done


class _Batches:
    """Sends the engine's per-document worker calls in a few tasks per loop turn.

    Each task that crosses to a worker process costs this process a pickling
    round, a pipe write and a future; for small documents that was more than
    the work itself. Calls queue until ``flush``
    (before the engine waits), then go out split across the workers, at most
    ``size`` per task; each call still gets its own future and its own result
    or error.
    """

    def __init__(self, executor: Executor, *, workers: int, size: int) -> None:
        self.executor = executor
        self.workers = max(1, workers)
        self.size = max(1, size)
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]]] = []
        self.first = True

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self.pending.append((fn, args, future))
        return future

    def flush(self, *, hold: Callable[..., Any] | None = None) -> None:
        """Send what is queued; calls of ``hold`` stay queued while fewer than
        ``size`` (more are about to come: the token is still signing)."""
        pending, self.pending = self.pending, []
        if hold is not None:
            held = [c for c in pending if c[0] is hold]
            if 0 < len(held) < self.size:
                self.pending = held
                pending = [c for c in pending if c[0] is not hold]
        by_fn: dict[Callable[..., Any], list[tuple[tuple[Any, ...], Future[Any]]]] = {}
        for fn, args, future in pending:
            if future.set_running_or_notify_cancel():  # False: cancelled while queued
                by_fn.setdefault(fn, []).append((args, future))
        for fn, calls in by_fn.items():
            step = max(1, min(self.size, -(-len(calls) // self.workers)))
            chunks = [calls[i : i + step] for i in range(0, len(calls), step)]
            if self.first and chunks and len(chunks[0]) > 1:
                # The very first document alone: the token should not wait for a batch.
                chunks = [chunks[0][:1], chunks[0][1:], *chunks[1:]]
            self.first = False
            for chunk in chunks:
                futures = [f for _, f in chunk]
                try:
                    task = self.executor.submit(run_calls, fn, [a for a, _ in chunk])
                except Exception as exc:  # the pool is broken or shut down
                    for f in futures:
                        f.set_exception(exc)
                    continue
                task.add_done_callback(functools.partial(_resolve, futures))


def run_calls(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[tuple[bool, Any]]:
    """Worker: each call's (True, result) or (False, error)."""
    out: list[tuple[bool, Any]] = []
    for args in calls:
        try:
            out.append((True, fn(*args)))
        except Exception as exc:
            out.append((False, exc))
    return out


def _resolve(futures: list[Future[Any]], task: Future[Any]) -> None:
    if task.cancelled():
        for f in futures:
            f.set_exception(CancelledError())
        return
    error = task.exception()
    if error is not None:
        for f in futures:
            f.set_exception(error)
        return
    for f, (ok, value) in zip(futures, task.result(), strict=True):
        if ok:
            f.set_result(value)
        else:
            f.set_exception(value)


def _catch_sigint(flag: threading.Event) -> Any:
    """Route SIGINT to ``flag`` (main thread only); returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGINT, lambda _signum, _frame: flag.set())


def _restore_sigint(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def _admit(
    index: int,
    planned: PlannedDoc,
    result: DocumentResult,
    stages: Stages,
    spec: EngineSpec,
    run: _Run,
) -> _Doc | None:
    """Lock the input and decide: sign, skip (already done / locked) or fail (exists)."""
    lock = InputLock(planned.task.input)
    try:
        if not lock.acquire():
            result.status = Status.SKIPPED
            result.reason = "locked by another signkit run"
            run.record("document-result", result, status="skipped", reason=result.reason)
            run.events.document_done(result)
            return None
    except OSError as exc:
        result.fail(OutputError(f"cannot open ({exc.strerror})", subject=str(planned.task.input)))
        _record_failure(run, result)
        run.events.document_done(result)
        return None
    doc = _Doc(planned=planned, result=result, lock=lock, temp=temp_path(planned.output))
    out = planned.output
    if out.exists() and not spec.force:
        done = stages.already_done(out, run.signer_sha256)
        if planned.in_place:
            if done and not spec.resign:
                result.status = Status.SKIPPED
                result.reason = "already signed by this signer"
                run.record("document-result", result, status="skipped", reason=result.reason)
                run.final(doc)
                return None
        elif done and not spec.resign:
            result.status = Status.SKIPPED
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
        elif not done:
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


def _fail(doc: _Doc, exc: BaseException, run: _Run) -> None:
    _discard(doc)
    doc.result.fail(exc)
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
    if not run.pending_commit:
        run.oldest_pending = time.monotonic()
    run.pending_commit.append(doc)


def _commit_group(run: _Run) -> None:
    """Audit records durable first, then the outputs appear, then the directories sync."""
    if not run.pending_commit:
        return
    group, run.pending_commit = run.pending_commit, []
    if run.audit is not None:
        run.audit.commit()
    directories: set[Path] = set()
    published: list[int] = []
    for doc in group:
        planned = doc.planned
        try:
            publish(
                doc.temp, planned.output, replaces=planned.task.input if planned.in_place else None
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
    for directory in directories:
        with contextlib.suppress(OSError):
            fsync_directory(directory)
    if run.audit is not None and published:
        # Durable with the next commit: a `signed` result without this record
        # is one whose rename a crash may have prevented.
        run.audit.add({"type": "published", "docs": published})
    for doc in group:
        run.final(doc)
