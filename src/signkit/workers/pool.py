"""WorkerPool: forked workers fed through a pipe each, a watchdog for tasks
that outlive their budget, and a zygote that forks replacements."""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import multiprocessing
import os
import pickle
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_readable
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any

from signkit.workers import limits
from signkit.workers.limits import WorkerLostError

_PIPE_BUFFER = 1 << 20
"""Socket buffer of each worker's pipe: queued tasks fit without blocking the sender."""


_KILL_GRACE = 10.0
"""Seconds past a task's own budget before the pool ends a worker that stays silent."""


_REAP_GRACE = 5.0
"""Seconds a pool that shuts down waits for the zygote to end (it ends once
the replacements it forked have); then it is killed."""


_KILLED_GRACE = 0.5
"""Seconds a killed pool waits for its processes to be gone (a stopped run
has 2 s in all; a process killed ends at once unless the kernel holds it)."""


@dataclass(eq=False)
class _Task:
    """One task: its future, its pickled call and its time budget."""

    id: int
    future: Future[Any]
    payload: bytes
    timeout: float | None = None
    started: bool = False
    """Its future is running already (a task given back by a worker that left)."""


_RETIRING = -1
"""A worker's last message: it leaves, the tasks it has not read go back to the queue."""


class _Replacement:
    """A worker forked by the zygote (not this process's child): enough of
    multiprocessing.Process for the pool."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)

    def join(self, timeout: float | None = None) -> None:
        """Its end shows as the end of file on its pipe (the reader waits for
        that); the zygote, its parent, reaps it."""


@dataclass(eq=False)
class _Slot:
    """One worker process and the main process's end of its pipe."""

    process: Any
    conn: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    running: dict[int, _Task] = field(default_factory=dict)
    """Tasks sent to this worker, by id, not yet answered (in the order sent)."""
    deadlines: dict[int, float] = field(default_factory=dict)
    """When each running task with a budget must have answered (monotonic)."""
    closing: bool = False
    """The stop message was sent: its end of file is no failure."""
    warming: bool = False
    """Given its warm-up (or already warm): tasks may go to it."""
    gone: bool = False
    """Its pipe reached end of file."""
    lost_reason: str | None = None
    """Why the pool ended it, when it did."""
    retiring: bool = False
    """It said it leaves (after a call over its memory budget): replace it."""


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

    A worker that ends (or is ended because a task outlived its budget)
    fails only its own tasks, with WorkerLostError, and is replaced.
    """

    def __init__(
        self, workers: int, *, initializer: Callable[[], None] | None = None, depth: int = 2
    ) -> None:
        ctx = multiprocessing.get_context("fork")
        self._depth = max(1, depth)
        self._initializer = initializer
        self._lock = threading.Lock()
        self._queue: deque[_Task] = deque()
        self._ids = itertools.count()
        self._shutdown = False
        self._warming = False
        self._warm_ids: set[int] = set()
        self._broken: str | None = None
        self._slots: list[_Slot] = []
        self._ended: list[Any] = []
        """Processes of slots given to a replacement: reaped at shutdown."""
        conns: list[Connection] = []
        for _ in range(max(1, workers)):
            ours, theirs = ctx.Pipe(duplex=True)
            _widen(ours)
            _widen(theirs)
            inherited = [*conns, ours]
            process = ctx.Process(target=_serve, args=(theirs, inherited, initializer), daemon=True)
            process.start()
            theirs.close()
            conns.append(ours)
            self._slots.append(_Slot(process, ours))
        # The zygote is forked now, like the workers, before anything a
        # replacement must not inherit exists in this process.
        self._zygote_conn, theirs = ctx.Pipe(duplex=True)
        self._zygote = ctx.Process(
            target=_zygote, args=(theirs, [*conns, self._zygote_conn], initializer), daemon=True
        )
        self._zygote.start()
        theirs.close()
        self._zygote_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="signkit-pool", daemon=True)
        self._reader.start()

    @property
    def workers(self) -> int:
        """How many worker processes."""
        return len(self._slots)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.submit_timed(None, fn, *args, **kwargs)

    def submit_timed(
        self, timeout: float | None, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """``submit``; a worker that has not answered ``timeout`` seconds (plus a
        grace) after starting the task is ended and its tasks fail."""
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
            self._queue.append(_Task(next(self._ids), future, payload, timeout))
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

    def shrink(self, keep: int) -> None:
        """Stop the workers past the first ``keep`` (at least one) that hold
        no work: a batch with fewer documents than workers does not pay for
        a worker's imports and memory it will never use. An idle one gets
        its stop message, one still warming up is ended; either way its
        warm-up is given up and it is not replaced."""
        with self._lock:
            extra = [
                s
                for s in self._slots[max(1, keep) :]
                if not s.gone and not s.closing and set(s.running) <= self._warm_ids
            ]
            dropped: list[Future[Any]] = []
            ended: list[_Slot] = []
            stops: list[tuple[_Slot, bytes]] = []
            for slot in extra:
                slot.closing = True
                if slot.running:
                    dropped += [task.future for task in slot.running.values()]
                    slot.running.clear()
                    ended.append(slot)
                else:
                    stops.append((slot, b""))
        for slot in ended:
            with contextlib.suppress(OSError):
                slot.process.kill()
        for future in dropped:
            future.set_exception(RuntimeError("warm-up given up: fewer documents than workers"))
        self._send(stops)

    def _warm_slot(self, fn: Callable[..., Any], args: tuple[Any, ...], slot: _Slot) -> Future[Any]:
        future: Future[Any] = Future()
        payload = pickle.dumps((fn, args, {}), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._broken is not None:
                raise BrokenProcessPool(self._broken)
            if self._shutdown or slot.closing or slot.gone:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future.set_running_or_notify_cancel()
            task_id = next(self._ids)
            self._warm_ids.add(task_id)
            slot.running[task_id] = _Task(task_id, future, payload, started=True)
            slot.warming = True
            sends = [(slot, pickle.dumps(task_id) + payload), *self._assign_locked()]
        self._send(sends)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            cancelled = self._take_queue_locked() if cancel_futures else []
            # A worker still importing for a batch that is over (a short
            # batch ends before the last worker is warm) is stopped, not waited for.
            unwarmed = [
                s
                for s in self._slots
                if s.running and set(s.running) <= self._warm_ids and not s.gone
            ]
            dropped: list[Future[Any]] = []
            for slot in unwarmed:
                slot.closing = True
                dropped += [task.future for task in slot.running.values()]
                slot.running.clear()
            stops = self._stops_locked()
        for slot in unwarmed:
            with contextlib.suppress(OSError):
                slot.process.kill()
        for future in dropped:
            future.set_exception(RuntimeError("warm-up stopped at shutdown"))
        _cancel(cancelled)
        self._send(stops)
        self._stop_zygote()
        if wait:
            self._reader.join()
            for slot in self._slots:
                slot.process.join()
        self._reap(_REAP_GRACE if wait else 0.0)

    def kill(self) -> None:
        """End every worker now (a stopped run that cannot wait): their tasks
        fail with WorkerLostError, queued tasks are cancelled."""
        with self._lock:
            self._shutdown = True
            cancelled = self._take_queue_locked()
            failed: list[Future[Any]] = []
            for slot in self._slots:
                slot.closing = True
                failed += [task.future for task in slot.running.values()]
                slot.running.clear()
                slot.deadlines.clear()
        for slot in self._slots:
            with contextlib.suppress(OSError):
                slot.process.kill()
        for future in failed:
            with contextlib.suppress(Exception):
                future.set_exception(WorkerLostError("the run was stopped"))
        _cancel(cancelled)
        self._stop_zygote()
        self._reap(_KILLED_GRACE)

    # -------------------------------------------------------------- internals

    def _take_queue_locked(self) -> list[_Task]:
        tasks = list(self._queue)
        self._queue.clear()
        return tasks

    def _stop_zygote(self) -> None:
        with self._zygote_lock:
            with contextlib.suppress(OSError):
                self._zygote_conn.send_bytes(b"")
            with contextlib.suppress(OSError):
                self._zygote_conn.close()

    def _reap(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the processes this one forked that have
        ended or are ending: the zygote once its replacements have ended, the
        workers that were replaced. A child left unreaped when this process
        exits becomes a zombie of whatever adopts it, and a container's first
        process may never reap it: one more with every scheduled run."""
        deadline = time.monotonic() + timeout
        self._zygote.join(max(0.0, deadline - time.monotonic()))
        if timeout and self._zygote.exitcode is None:
            self._zygote.kill()
            self._zygote.join(min(timeout, _KILLED_GRACE))
        for process in (*self._ended, *(slot.process for slot in self._slots)):
            process.join(max(0.0, deadline - time.monotonic()))

    def _assign_locked(self) -> list[tuple[_Slot, bytes]]:
        """Give queued tasks to the least busy workers with room (lock held)."""
        sends = []
        live = [s for s in self._slots if not s.gone and not s.closing]
        slots = [s for s in live if s.warming] if self._warming else live
        while self._queue and slots:
            slot = min(slots, key=lambda s: len(s.running))
            if len(slot.running) >= self._depth:
                break
            task = self._queue.popleft()
            if not task.started and not task.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            task.started = True
            slot.running[task.id] = task
            if task.timeout is not None:
                slot.deadlines[task.id] = time.monotonic() + task.timeout + _KILL_GRACE
            sends.append((slot, pickle.dumps(task.id) + task.payload))
        return sends

    def _stops_locked(self) -> list[tuple[_Slot, bytes]]:
        """After shutdown: the stop message for each idle worker (lock held)."""
        if not self._shutdown or self._queue:
            return []
        stops = []
        for slot in self._slots:
            if not slot.running and not slot.closing and not slot.gone:
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
        while True:
            with self._lock:
                live = {slot.conn: slot for slot in self._slots if not slot.gone}
                deadlines = [d for s in live.values() for d in s.deadlines.values()]
            if not live:
                break
            timeout = None
            if deadlines:
                timeout = max(0.0, min(deadlines) - time.monotonic())
            # A replacement's pipe joins the wait within this bound.
            timeout = 0.5 if timeout is None else min(timeout, 0.5)
            ready = wait_readable(list(live), timeout)
            self._enforce_deadlines()
            for conn in ready:
                slot = live[conn]  # type: ignore[index]
                try:
                    stream = io.BytesIO(slot.conn.recv_bytes())
                except (EOFError, OSError):
                    self._lost(slot)
                    continue
                # The peer is a worker this process forked: its pickles are ours.
                task_id = pickle.load(stream)  # noqa: S301
                if task_id == _RETIRING:
                    with self._lock:
                        slot.retiring = True
                        slot.closing = True
                    continue
                try:
                    ok, value = pickle.load(stream)  # noqa: S301
                except Exception as exc:  # an answer that cannot be rebuilt here
                    ok, value = False, RuntimeError(f"a worker's answer is unreadable ({exc!r})")
                with self._lock:
                    task = slot.running.pop(task_id, None)
                    slot.deadlines.pop(task_id, None)
                    sends = self._assign_locked() + self._stops_locked()
                self._send(sends)
                if task is None:
                    continue  # a warm-up given up at shutdown
                future = task.future
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        for slot in self._slots:
            with contextlib.suppress(OSError):
                slot.conn.close()

    def _enforce_deadlines(self) -> None:
        """End a worker whose task outlived its budget (stuck in C code, say)."""
        now = time.monotonic()
        with self._lock:
            late = [
                s
                for s in self._slots
                if not s.gone
                and s.lost_reason is None
                and any(d <= now for d in s.deadlines.values())
            ]
            for slot in late:
                slot.lost_reason = (
                    "no answer within the document's time budget: the worker was stopped"
                )
        for slot in late:
            slot.process.kill()

    def _lost(self, slot: _Slot) -> None:
        """A worker's pipe closed. Normal after its stop message. Otherwise the
        task it was running fails (it crashed on it, or was ended for it), the
        tasks it had not read yet go back to the queue and, unless the pool is
        shutting down, a new worker takes its place. A worker that said it
        leaves ran nothing more: all it held goes back."""
        with self._lock:
            slot.gone = True
            with contextlib.suppress(OSError):
                slot.conn.close()
            if slot.closing and not slot.running and not slot.retiring:
                return
            reason = slot.lost_reason or "a worker process ended abruptly"
            tasks = list(slot.running.values())
            slot.running.clear()
            slot.deadlines.clear()
            warm = [t for t in tasks if t.id in self._warm_ids]
            work = [t for t in tasks if t.id not in self._warm_ids]
            failed = [] if slot.retiring else work[:1]
            self._queue.extendleft(reversed(work[len(failed) :]))
            replace = not self._shutdown
        for task in warm:
            with contextlib.suppress(Exception):
                task.future.set_exception(RuntimeError("warm-up interrupted"))
        for task in failed:
            with contextlib.suppress(Exception):
                task.future.set_exception(WorkerLostError(reason))
        if replace:
            self._replace(slot)
        else:
            with self._lock:
                cancelled = self._take_queue_locked()
                stops = self._stops_locked()
            _cancel(cancelled)
            self._send(stops)

    def _replace(self, old: _Slot) -> None:
        try:
            with self._zygote_lock:
                self._zygote_conn.send_bytes(b"w")
                fd = recv_handle(self._zygote_conn)
                pid = int(self._zygote_conn.recv_bytes())
        except (OSError, EOFError, ValueError):
            self._break("a worker process ended and could not be replaced")
            return
        conn = Connection(fd)
        _widen(conn)
        fresh = _Slot(_Replacement(pid), conn, warming=True)
        with self._lock:
            self._slots[self._slots.index(old)] = fresh
            self._ended.append(old.process)
            sends = self._assign_locked() + self._stops_locked()
        self._send(sends)

    def _break(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
            tasks = list(self._queue)
            self._queue.clear()
        for task in tasks:
            if task.started or task.future.set_running_or_notify_cancel():
                task.future.set_exception(BrokenProcessPool(reason))


def _cancel(tasks: list[_Task]) -> None:
    """Cancel queued tasks; one already started (given back by a worker that
    left) cannot be cancelled, so it fails instead."""
    for task in tasks:
        if task.started:
            with contextlib.suppress(Exception):
                task.future.set_exception(WorkerLostError("the run was stopped"))
        else:
            task.future.cancel()


def _widen(conn: Connection) -> None:
    """Large socket buffers both ways (best effort)."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _PIPE_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _PIPE_BUFFER)


def die_with_parent() -> None:
    """Linux: end this worker if the main process dies (kill -9 included),
    instead of lingering and holding the run's pipes open."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _zygote(
    control: Connection, inherited: list[Connection], initializer: Callable[[], None] | None
) -> None:
    """Fork a fresh worker on each request; hand the main process its pipe."""
    for other in inherited:
        other.close()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the main process stops
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent()
    while True:
        try:
            message = control.recv_bytes()
        except (EOFError, OSError):
            message = b""
        if not message:
            # The pool stops: its replacements were told to stop too (or
            # killed); reap them before ending, or they outlive their parent.
            with contextlib.suppress(ChildProcessError):
                while True:
                    os.waitpid(-1, 0)
            return
        ours, theirs = multiprocessing.Pipe(duplex=True)
        pid = os.fork()
        if pid == 0:
            control.close()
            ours.close()
            code = 0
            try:
                _serve(theirs, [], initializer)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        send_handle(control, ours.fileno(), os.getppid())
        control.send_bytes(str(pid).encode())
        ours.close()
        # Reap whatever replacement has ended since (never blocking).
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def _serve(
    conn: Connection, inherited: list[Connection], initializer: Callable[[], None] | None
) -> None:
    """Worker loop: run each task it is sent and answer it; stop on an empty message.

    The collector runs between tasks: its first threshold is raised, and the
    young generations are collected once after each answer. A task (a
    document, or a batch of a few) allocates tens of thousands of objects;
    collected every 700 allocations, its live ones (the open document, its
    certificates) would be walked again and again. After the answer nearly
    all of it is garbage, walked once, while the main process reads the
    answer. A task that allocates far more (a hostile document) still meets
    collections during the call, so what it holds stays bounded."""
    for other in inherited:
        other.close()  # the main process's ends: their end of file must reach it alone
    if initializer is not None:
        initializer()
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], _TASK_THRESHOLD), *threshold[1:])
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        _answer(conn, message)
        del message
        gc.collect(1)  # the task's objects are garbage now (see above)
        if limits.retiring():
            # Answered; the tasks not read yet go to a fresh worker.
            conn.send_bytes(pickle.dumps(_RETIRING))
            return


def _answer(conn: Connection, message: bytes) -> None:
    """Run the task in ``message`` and send its answer (or its error)."""
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


_TASK_THRESHOLD = 50_000
"""The collector's first threshold in a worker (see _serve)."""
