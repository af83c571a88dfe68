"""The worker processes of a batch: forked (fast; nothing PKCS#11 is loaded
yet, so no token state is ever duplicated), dying with the main process, and
warmed up ahead of their first document. A light module on purpose."""

from __future__ import annotations

import contextlib
import io
import itertools
import multiprocessing
import os
import pickle
import socket
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_readable
from typing import Any


def worker_init() -> None:
    """Process-pool initializer: Ctrl-C is the main process's; die with it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def die_with_parent() -> None:
    """Linux: end this worker if the main process dies (kill -9 included),
    instead of lingering and holding the run's pipes open."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def warm(module: str, function: str) -> None:
    """Worker task: import ``module`` and run its warm-up ``function``."""
    import importlib

    getattr(importlib.import_module(module), function)()


_PRESTARTED: WorkerPool | None = None


def prestart(warm_first: tuple[str, str]) -> None:
    """Fork one worker per CPU at once and start one importing ``warm_first``
    (module, function): the entry point calls this first thing for a command
    that will sign, so the worker's imports (the PDF stack, ~0.6 s) run while
    this process builds the CLI, plans, opens the token and checks the signer.
    ``start_pool`` adopts the pool; nothing PKCS#11 exists yet, so no token
    state is ever duplicated."""
    global _PRESTARTED
    if _PRESTARTED is None:
        _PRESTARTED = WorkerPool(os.cpu_count() or 2, initializer=worker_init)
        _PRESTARTED.warm_up(warm, *warm_first)


def start_pool(jobs: int, *, warm_first: tuple[str, str] | None = None) -> WorkerPool:
    """The batch's workers: ``jobs`` (0 = one per CPU), the pre-started pool if
    it has that many, else forked now and warmed with ``warm_first`` (module,
    function): see ``WorkerPool.warm_up``."""
    global _PRESTARTED
    workers = jobs or os.cpu_count() or 2
    pool, _PRESTARTED = _PRESTARTED, None
    if pool is not None and pool.workers == workers:
        return pool
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    pool = WorkerPool(workers, initializer=worker_init)
    if warm_first is not None:
        pool.warm_up(warm, *warm_first)
    return pool


_PIPE_BUFFER = 1 << 20
"""Socket buffer of each worker's pipe: queued tasks fit without blocking the sender."""


@dataclass(eq=False)
class _Slot:
    """One worker process and the main process's end of its pipe."""

    process: Any
    conn: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    running: dict[int, Future[Any]] = field(default_factory=dict)
    """Tasks sent to this worker, by id, not yet answered."""
    closing: bool = False
    """The stop message was sent: its end of file is no failure."""
    warming: bool = False
    """Given its warm-up (or already warm): tasks may go to it."""


class WorkerPool(Executor):
    """Forked worker processes, each fed through a pipe of its own.

    ``concurrent.futures.ProcessPoolExecutor`` moves every task through a
    manager thread and a queue-feeder thread before it reaches a pipe; for
    the small tasks of a batch those hand-offs cost the main process more
    than the work. Here the submitting thread writes the task to a worker's
    pipe itself and one reader thread takes the answers. Each worker holds
    at most ``depth`` tasks; the rest wait here (so they can still be
    cancelled) and go to the first worker that answers. After ``warm_up``,
    tasks go only to workers given their warm-up, so the first document
    waits for the worker already importing rather than starting a cold one.
    """

    def __init__(
        self, workers: int, *, initializer: Callable[[], None] | None = None, depth: int = 2
    ) -> None:
        ctx = multiprocessing.get_context("fork")
        self._depth = max(1, depth)
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, Future[Any], bytes]] = deque()
        self._ids = itertools.count()
        self._shutdown = False
        self._warming = False
        self._warm_ids: set[int] = set()
        self._broken: str | None = None
        self._slots: list[_Slot] = []
        for _ in range(max(1, workers)):
            ours, theirs = ctx.Pipe(duplex=True)
            _widen(ours)
            _widen(theirs)
            inherited = [s.conn for s in self._slots] + [ours]
            process = ctx.Process(target=_serve, args=(theirs, inherited, initializer), daemon=True)
            process.start()
            theirs.close()
            self._slots.append(_Slot(process, ours))
        self._reader = threading.Thread(target=self._read, name="signkit-pool", daemon=True)
        self._reader.start()

    @property
    def workers(self) -> int:
        """How many worker processes."""
        return len(self._slots)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            payload = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable argument fails its own task only
            future.set_exception(exc)
            return future
        with self._lock:
            if self._broken is not None:
                raise BrokenProcessPool(self._broken)
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.append((next(self._ids), future, payload))
            sends = self._assign_locked()
        self._send(sends)
        return future

    def warm_up(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` (an import of the stack the tasks need) on one
        worker now, and on each of the others once it is done: so the first
        worker gets the CPUs this process leaves free, instead of every
        worker importing at once, and the first document goes to it."""
        with self._lock:
            self._warming = True
        first = self._warm_slot(fn, args, self._slots[0])

        def the_others(_done: Future[Any]) -> None:
            for slot in self._slots[1:]:
                with contextlib.suppress(RuntimeError, BrokenProcessPool):
                    self._warm_slot(fn, args, slot)

        first.add_done_callback(the_others)
        return first

    def _warm_slot(self, fn: Callable[..., Any], args: tuple[Any, ...], slot: _Slot) -> Future[Any]:
        future: Future[Any] = Future()
        payload = pickle.dumps((fn, args, {}), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._broken is not None:
                raise BrokenProcessPool(self._broken)
            if self._shutdown or slot.closing:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future.set_running_or_notify_cancel()
            task_id = next(self._ids)
            self._warm_ids.add(task_id)
            slot.running[task_id] = future
            slot.warming = True
            sends = [(slot, pickle.dumps(task_id) + payload), *self._assign_locked()]
        self._send(sends)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[1].cancel()
            # A worker still importing for a batch that is over (a short
            # batch ends before the last worker is warm) is stopped, not waited for.
            unwarmed = [s for s in self._slots if s.running and set(s.running) <= self._warm_ids]
            dropped: list[Future[Any]] = []
            for slot in unwarmed:
                slot.closing = True
                dropped += slot.running.values()
                slot.running.clear()
            stops = self._stops_locked()
        for slot in unwarmed:
            with contextlib.suppress(OSError):
                slot.process.kill()
        for future in dropped:
            future.set_exception(RuntimeError("warm-up stopped at shutdown"))
        self._send(stops)
        if wait:
            self._reader.join()
            for slot in self._slots:
                slot.process.join()

    # -------------------------------------------------------------- internals

    def _assign_locked(self) -> list[tuple[_Slot, bytes]]:
        """Give queued tasks to the least busy workers with room (lock held)."""
        sends = []
        slots = [s for s in self._slots if s.warming] if self._warming else self._slots
        while self._queue:
            slot = min(slots, key=lambda s: len(s.running))
            if len(slot.running) >= self._depth or slot.closing:
                break
            task_id, future, payload = self._queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            slot.running[task_id] = future
            sends.append((slot, pickle.dumps(task_id) + payload))
        return sends

    def _stops_locked(self) -> list[tuple[_Slot, bytes]]:
        """After shutdown: the stop message for each idle worker (lock held)."""
        if not self._shutdown or self._queue:
            return []
        stops = []
        for slot in self._slots:
            if not slot.running and not slot.closing:
                slot.closing = True
                stops.append((slot, b""))
        return stops

    def _send(self, sends: list[tuple[_Slot, bytes]]) -> None:
        for slot, message in sends:
            try:
                with slot.send_lock:
                    slot.conn.send_bytes(message)
            except OSError:
                pass  # the worker is gone: the reader fails its tasks

    def _read(self) -> None:
        slots = {slot.conn: slot for slot in self._slots}
        while slots:
            for conn in wait_readable(list(slots)):
                slot = slots[conn]  # type: ignore[index]
                try:
                    stream = io.BytesIO(slot.conn.recv_bytes())
                except (EOFError, OSError):
                    del slots[slot.conn]
                    self._lost(slot)
                    continue
                # The peer is a worker this process forked: its pickles are ours.
                task_id = pickle.load(stream)  # noqa: S301
                try:
                    ok, value = pickle.load(stream)  # noqa: S301
                except Exception as exc:  # an answer that cannot be rebuilt here
                    ok, value = False, RuntimeError(f"a worker's answer is unreadable ({exc!r})")
                with self._lock:
                    future = slot.running.pop(task_id, None)
                    sends = self._assign_locked() + self._stops_locked()
                self._send(sends)
                if future is None:
                    continue  # a warm-up given up at shutdown
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        for slot in self._slots:
            with contextlib.suppress(OSError):
                slot.conn.close()

    def _lost(self, slot: _Slot) -> None:
        """A worker's pipe closed: normal after its stop message, else the pool is broken."""
        with self._lock:
            if slot.closing and not slot.running:
                return
            slot.closing = True
            self._broken = "a worker process ended abruptly"
            failed = list(slot.running.values())
            slot.running.clear()
            failed += [future for _id, future, _payload in self._queue]
            self._queue.clear()
            stops = self._stops_locked()
        self._send(stops)
        for future in failed:
            if future.running() or future.set_running_or_notify_cancel():
                future.set_exception(BrokenProcessPool(self._broken))


def _widen(conn: Connection) -> None:
    """Large socket buffers both ways (best effort)."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _PIPE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PIPE_BUFFER)


def _serve(
    conn: Connection, inherited: list[Connection], initializer: Callable[[], None] | None
) -> None:
    """Worker loop: run each task it is sent and answer it; stop on an empty message."""
    for other in inherited:
        other.close()  # the main process's ends: their end of file must reach it alone
    if initializer is not None:
        initializer()
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        stream = io.BytesIO(message)
        # The sender is the process that forked this one.
        task_id = pickle.load(stream)  # noqa: S301
        try:
            fn, args, kwargs = pickle.load(stream)  # noqa: S301
            answer: tuple[bool, Any] = (True, fn(*args, **kwargs))
        except BaseException as exc:
            answer = (False, exc)
        head = pickle.dumps(task_id)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            error = RuntimeError(f"a worker's answer cannot cross processes ({exc!r})")
            data = pickle.dumps((False, error), protocol=pickle.HIGHEST_PROTOCOL)
        conn.send_bytes(head + data)
