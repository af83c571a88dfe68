"""Worker calls sent in batches: each task that crosses to a worker process
costs a pickling round, a pipe write and a future, so the engine's
per-document calls go out a few at a time (see ``Batches``)."""

from __future__ import annotations

import functools
import queue as queue_module
from collections.abc import Callable
from concurrent.futures import (
    CancelledError,
    Executor,
    Future,
)
from typing import Any

from signkit.errors import SignkitError, report_bug
from signkit.workers import Limits, limited_call


def completed_futures(
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


class Batches:
    """Sends the engine's per-document worker calls in a few tasks per loop turn.

    Each task that crosses to a worker process costs this process a pickling
    round, a pipe write and a future; for small documents that was more than
    the work itself. Calls queue until ``flush``
    (before the engine waits), then go out split across the workers, at most
    ``size`` per task; each call still gets its own future and its own result
    or error.
    """

    def __init__(
        self, executor: Executor, *, workers: int, size: int, limits: Limits | None = None
    ) -> None:
        self.executor = executor
        self.limits = limits
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
                    task = _submit(
                        self.executor, self.limits, len(chunk), run_calls, fn, [a for a, _ in chunk]
                    )
                except Exception as exc:  # the pool is broken or shut down
                    for f in futures:
                        f.set_exception(exc)
                    continue
                task.add_done_callback(functools.partial(_resolve, futures))


def _submit(
    executor: Executor,
    limits: Limits | None,
    calls: int,
    fn: Callable[..., Any],
    *args: Any,
) -> Future[Any]:
    """Submit with the pool's watchdog when it has one (WorkerPool)."""
    timed = getattr(executor, "submit_timed", None)
    if timed is None or limits is None or limits.seconds is None:
        return executor.submit(fn, *args, limits)
    return timed(limits.seconds * calls, fn, *args, limits)  # type: ignore[no-any-return]


def _subject(args: tuple[Any, ...]) -> object:
    """The document a worker call is about (its input, else its temp file)."""
    first = args[0] if args else None
    return getattr(first, "input", None) or getattr(first, "temp", None) or "a document"


def run_calls(
    fn: Callable[..., Any], calls: list[tuple[Any, ...]], limits: Limits | None = None
) -> list[tuple[bool, Any]]:
    """Worker: each call's (True, result) or (False, error), each within ``limits``."""
    out: list[tuple[bool, Any]] = []
    for args in calls:
        try:
            if limits is None:
                out.append((True, fn(*args)))
            else:
                out.append((True, limited_call(limits, fn, *args)))
        except Exception as exc:
            if not isinstance(exc, SignkitError):
                report_bug(exc, _subject(args))
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
