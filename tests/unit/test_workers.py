"""The batch's worker pool: real forked processes, one pipe each.

Tasks that must be "busy" wait on events the workers share with this process
(made before the workers fork), never for a guessed time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path

import pytest

from signkit.errors import InputFormatError
from signkit.workers import Limits, WorkerLostError, WorkerPool, limited_call

_FORK = multiprocessing.get_context("fork")


class Flag:
    """A flag shared with forked workers, without a lock: a worker killed by a
    test (a budget, a shrink, a crash) while it waits on or sets a
    multiprocessing Event can leave the Event's lock or condition held, and
    every later test that touches it would hang."""

    def __init__(self) -> None:
        self._value = _FORK.RawValue("i", 0)

    def set(self) -> None:
        self._value.value = 1

    def clear(self) -> None:
        self._value.value = 0

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._value.value:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True


GATE = Flag()
"""Held tasks return when the test sets it."""
STARTED = Flag()
"""Set by a held task once it runs in a worker."""
# Warm-ups counted through a pipe: a write of one byte needs no lock.
_WARMED_READ, _WARMED_WRITE = os.pipe()
os.set_blocking(_WARMED_READ, False)
_warmed = 0


def warmed() -> int:
    """How many workers finished a counted warm-up since the test began."""
    global _warmed
    with contextlib.suppress(BlockingIOError):
        _warmed += len(os.read(_WARMED_READ, 1024))
    return _warmed


@pytest.fixture(autouse=True)
def _events() -> Iterator[None]:
    global _warmed
    GATE.clear()
    STARTED.clear()
    warmed()
    _warmed = 0
    yield
    GATE.set()  # nothing a test left behind waits on


def pid_and_square(n: int) -> tuple[int, int]:
    if n == 3:
        raise InputFormatError("three is not allowed", subject=f"doc{n}")
    return os.getpid(), n * n


def pid() -> int:
    return os.getpid()


def held() -> int:
    """Runs until the test opens the gate."""
    STARTED.set()
    assert GATE.wait(timeout=120), "the test never opened the gate"
    return os.getpid()


def counted_warm_up() -> int:
    os.write(_WARMED_WRITE, b"w")
    return os.getpid()


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable() -> object:
    return threading.Lock()


def test_results_errors_and_both_workers() -> None:
    with WorkerPool(2) as pool:
        futures = [pool.submit(pid_and_square, n) for n in range(40)]
        wait(futures)
    error = futures[3].exception()
    assert isinstance(error, InputFormatError) and error.subject == "doc3"
    answers = [f.result() for f in futures if f.exception() is None]
    assert [sq for _pid, sq in answers] == [n * n for n in range(40) if n != 3]
    pids = {pid for pid, _sq in answers}
    assert len(pids) == 2 and os.getpid() not in pids


def test_queued_tasks_can_be_cancelled_and_never_run() -> None:
    with WorkerPool(1, depth=1) as pool:
        busy = pool.submit(held)
        assert STARTED.wait(timeout=60)  # with the worker, which takes no more
        queued = [pool.submit(pid) for _ in range(3)]
        assert all(f.cancel() for f in queued)  # still here, not sent
        assert not busy.cancel()  # already with the worker
        GATE.set()
        assert busy.result(timeout=60) != os.getpid()
    assert all(f.cancelled() for f in queued)


def test_shutdown_cancel_futures_drops_what_waits() -> None:
    pool = WorkerPool(1, depth=1)
    busy = pool.submit(held)
    queued = pool.submit(pid)
    assert STARTED.wait(timeout=60)
    stopping = threading.Thread(target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True})
    stopping.start()
    wait_until(queued.cancelled, "the queued task to be cancelled")
    assert not busy.done()  # shutdown waits for the running task
    GATE.set()
    stopping.join(timeout=60)
    assert not stopping.is_alive()
    assert busy.result() and queued.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(pid)


def test_an_answer_that_cannot_cross_is_an_error_of_its_own_task() -> None:
    with WorkerPool(1) as pool:
        bad = pool.submit(unpicklable)
        good = pool.submit(pid_and_square, 2)
        with pytest.raises(RuntimeError, match="cannot cross processes"):
            bad.result(timeout=10)
        assert good.result(timeout=10)[1] == 4


def test_an_argument_that_cannot_cross_fails_its_own_task() -> None:
    with WorkerPool(1) as pool:
        bad = pool.submit(pid_and_square, threading.Lock())
        assert isinstance(bad.exception(timeout=10), TypeError)
        assert pool.submit(pid_and_square, 2).result(timeout=10)[1] == 4


def test_a_killed_worker_fails_only_its_task_and_is_replaced() -> None:
    """A worker that dies (a crash on a hostile document, or ended for its
    budget) fails its own task; queued work goes to a fresh worker."""
    pool = WorkerPool(1, depth=2)  # the second task is already in the dying worker's pipe
    try:
        first = pool.submit(pid).result(timeout=10)
        dead = pool.submit(die)
        waiting = pool.submit(pid)
        assert isinstance(dead.exception(timeout=10), WorkerLostError)
        replacement = waiting.result(timeout=10)
        assert replacement not in (first, os.getpid())
        assert pool.submit(pid_and_square, 5).result(timeout=10) == (replacement, 25)
    finally:
        pool.shutdown(wait=True)


def test_a_task_over_its_time_budget_ends_its_worker() -> None:
    """The pool's backstop for a call stuck where the worker's own alarm cannot
    reach (C code): no answer in time, the worker is ended and replaced."""
    pool = WorkerPool(1, depth=1)
    try:
        stuck = pool.submit_timed(0.1, uninterruptible_nap, 60)
        started = time.monotonic()
        error = stuck.exception(timeout=30)
        assert isinstance(error, WorkerLostError) and "time budget" in str(error)
        assert time.monotonic() - started < 25
        assert pool.submit(pid_and_square, 2).result(timeout=10)[1] == 4
    finally:
        pool.shutdown(wait=True)


def test_a_call_over_its_memory_budget_fails_as_malformed() -> None:
    """The worker leaves after such a call (its heap may be in pieces); the task
    it had not read yet runs on its replacement."""
    limits = Limits(memory_bytes=64 << 20, seconds=30)
    pool = WorkerPool(1, depth=2)
    try:
        before = pool.submit(pid).result(timeout=10)
        hog = pool.submit(limited_call, limits, allocate, 512 << 20)
        after = pool.submit(limited_call, limits, allocate_and_pid, 1 << 20)
        error = hog.exception(timeout=30)
        assert isinstance(error, InputFormatError) and "memory budget of 64 MiB" in str(error)
        size, worker = after.result(timeout=30)
        assert size == 1 << 20 and worker != before
    finally:
        pool.shutdown(wait=True)


def test_an_alarm_arriving_as_the_call_returns_is_the_time_budget_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: SIGALRM landing after the call returned, before the timer
    was disarmed, escaped limited_call as its private exception (a traceback
    from the worker, under load). Where a signal is delivered cannot be
    scheduled, so the disarming call stands in for that moment: it raises what
    the handler raises, once."""
    import resource

    from signkit.workers import limits as limits_module

    real_setitimer = signal.setitimer
    fired: list[bool] = []

    def setitimer(which: int, seconds: float, *rest: float) -> tuple[float, float]:
        if seconds == 0 and not fired:
            fired.append(True)
            real_setitimer(which, 0)
            raise limits_module._OutOfTime
        return real_setitimer(which, seconds, *rest)

    handler_before = signal.getsignal(signal.SIGALRM)
    rlimit_before = resource.getrlimit(resource.RLIMIT_AS)
    monkeypatch.setattr(signal, "setitimer", setitimer)
    with pytest.raises(InputFormatError, match="time budget of 30 s"):
        limited_call(Limits(memory_bytes=1 << 30, seconds=30), allocate, 16)
    assert fired
    assert signal.getsignal(signal.SIGALRM) == handler_before
    assert resource.getrlimit(resource.RLIMIT_AS) == rlimit_before
    assert real_setitimer(signal.ITIMER_REAL, 0) == (0.0, 0.0)


def long_warm_up() -> int:
    """A warm-up that outlasts the test (the worker is ended in it)."""
    STARTED.set()
    time.sleep(120)
    return os.getpid()


@pytest.mark.parametrize("second_worker", ["idle", "warming"])
def test_a_batch_smaller_than_the_pool_stops_the_workers_it_does_not_need(
    second_worker: str,
) -> None:
    """Regression: a batch of one document kept the second worker and let it
    import the format's stack, so a one-document run's memory held two
    workers' (the 128 MiB promise of a 2 GiB PDF failed on a quiet machine)."""
    pool = WorkerPool(2)
    try:
        processes = [slot.process for slot in pool._slots]
        if second_worker == "warming":
            first = pool.warm_up(counted_warm_up)
            first.result(timeout=30)
            # the others' warm-up starts when the first is done: the second
            # worker is now held inside it
            pool._warm_slot(long_warm_up, (), pool._slots[1])
            assert STARTED.wait(timeout=30)
        pool.shrink(1)
        wait_until(lambda: not processes[1].is_alive(), "the second worker to end")
        assert processes[0].is_alive()
        assert all(p == processes[0].pid for p, _ in pool.map(pid_and_square, [1, 2, 4]))
    finally:
        GATE.set()
        pool.shutdown(wait=True)


def gated_warm_up() -> int:
    """A warm-up that lasts until the test opens the gate, then is counted."""
    assert GATE.wait(timeout=120), "the test never opened the gate"
    return counted_warm_up()


@pytest.mark.parametrize("prestarted", [False, True])
def test_a_batch_pool_keeps_no_more_workers_than_documents(
    prestarted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: `extend` of one document forked a worker per CPU and let
    each import the format's stack (only `sign` stopped the spare ones).
    Every job now gets its pool from start_pool with its document count."""
    from signkit.workers import prestart, start_pool

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    warm_first = (__name__, "gated_warm_up")
    if prestarted:  # as the entry point does for a signing command
        prestart(warm_first)
    pool = start_pool(0, documents=1, warm_first=warm_first)
    try:
        processes = [slot.process for slot in pool._slots]
        assert len(processes) == (2 if prestarted else 1)
        wait_until(lambda: sum(p.is_alive() for p in processes) == 1, "one worker left")
        GATE.set()
        assert {p for p, _ in pool.map(pid_and_square, [1, 2])} == {processes[0].pid}
    finally:
        GATE.set()
        pool.shutdown(wait=True)
    assert warmed() == 1


# Which warm-ups ran, in order, through a pipe (as the counted ones).
_KINDS_READ, _KINDS_WRITE = os.pipe()
os.set_blocking(_KINDS_READ, False)


def light_warm_up() -> None:
    os.write(_KINDS_WRITE, b"l")


def full_warm_up() -> None:
    os.write(_KINDS_WRITE, b"f")


def warm_ups_run() -> bytes:
    with contextlib.suppress(BlockingIOError):
        return os.read(_KINDS_READ, 1024)
    return b""


@pytest.mark.parametrize(("batch", "expected"), [("light", b"l"), ("full", b"lf")])
def test_a_prestarted_pool_gets_the_warm_up_its_batch_needs(
    batch: str, expected: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry point picks a warm-up before the options are read (for
    `sign pdf`, the plain path's); a batch whose options need more gets its
    own warm-up too, ahead of its documents; a right guess is not repeated."""
    from signkit.workers import prestart, start_pool

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    warm_ups_run()
    prestart((__name__, "light_warm_up"))
    pool = start_pool(0, documents=1, warm_first=(__name__, f"{batch}_warm_up"))
    try:
        assert pool.submit(pid).result(timeout=60) == pool._slots[0].process.pid
    finally:
        pool.shutdown(wait=True)
    assert warm_ups_run() == expected


def uninterruptible_nap(seconds: float) -> None:
    import signal as sig

    sig.pthread_sigmask(sig.SIG_BLOCK, {sig.SIGALRM})
    time.sleep(seconds)


def allocate(size: int) -> int:
    return len(bytearray(size))


def allocate_and_pid(size: int) -> tuple[int, int]:
    return len(bytearray(size)), os.getpid()


def test_workers_exit_at_shutdown() -> None:
    pool = WorkerPool(2)
    first, second = pool.submit(held), pool.submit(held)  # one on each worker
    GATE.set()
    pids = {first.result(timeout=60), second.result(timeout=60)}
    assert len(pids) == 2
    pool.shutdown(wait=True)
    for worker in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)


def test_tasks_go_to_the_worker_given_its_warm_up_not_to_a_cold_one() -> None:
    with WorkerPool(2) as pool:
        warming = pool.warm_up(held)
        assert STARTED.wait(timeout=60)  # the first worker is warming
        first = pool.submit(pid)  # the other worker is idle, but cold
        assert not first.done()  # it waits for the warm one
        GATE.set()
        assert first.result(timeout=60) == warming.result(timeout=60)


def test_the_others_warm_after_the_first_and_then_take_tasks() -> None:
    with WorkerPool(2) as pool:
        first = pool.warm_up(counted_warm_up).result(timeout=60)
        wait_until(lambda: warmed() == 2, "the second worker's warm-up")
        busy = [pool.submit(held) for _ in range(4)]  # the least busy worker each time
        GATE.set()
        pids = {f.result(timeout=60) for f in busy}
    assert first in pids and len(pids) == 2


WARMING = Flag()
"""Set by the second worker once its (endless) warm-up has started."""


def endless_on_the_second(first_pid: int) -> int:
    """Returns at once on the worker forked first; on the others it runs until
    the process is stopped (a warm-up still importing when the batch ends)."""
    if os.getpid() != first_pid:
        WARMING.set()
        threading.Event().wait()
    return os.getpid()


def test_a_worker_still_warming_when_the_batch_ends_is_stopped() -> None:
    WARMING.clear()
    pool = WorkerPool(2)
    first = pool.warm_up(endless_on_the_second, pool._slots[0].process.pid)
    first.result(timeout=60)
    assert WARMING.wait(timeout=60)  # the second worker is in its warm-up now
    started = time.monotonic()
    pool.shutdown(wait=True)  # would never return if it waited for that warm-up
    assert time.monotonic() - started < 30
    assert not any(slot.process.is_alive() for slot in pool._slots)


@pytest.mark.parametrize(
    ("cpus", "light", "expected"),
    [(2, True, 1), (2, False, 2), (8, True, 7), (1, True, 1), (None, False, 2)],
)
def test_light_formats_leave_a_cpu_to_the_main_process(
    monkeypatch: pytest.MonkeyPatch, cpus: int | None, light: bool, expected: int
) -> None:
    """XML's worker stages cost less per document than the token and the
    bookkeeping of the main process: with a worker per CPU they only take turns
    with it (measured: 1,000 e-invoices on 2 CPUs, one worker is faster)."""
    from signkit.formats.cms.plugin import CmsFormat
    from signkit.formats.pdf.plugin import PdfFormat
    from signkit.formats.xml.plugin import XmlFormat
    from signkit.workers import default_workers

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert default_workers(light) == expected
    assert (XmlFormat.light_stages, PdfFormat.light_stages, CmsFormat.light_stages) == (
        True,
        False,
        False,
    )


def leave_garbage() -> tuple[tuple[int, int, int], int]:
    """The worker's collector threshold, after leaving garbage in cycles (as
    a document's objects are left)."""
    import gc

    for _ in range(5_000):
        loop: list[object] = []
        loop.append(loop)
    return gc.get_threshold(), gc.get_count()[0]


def young_objects() -> int:
    import gc

    return gc.get_count()[0]


def test_a_worker_collects_between_tasks_not_during_them() -> None:
    import gc

    with WorkerPool(1) as pool:
        threshold, during = pool.submit(leave_garbage).result(timeout=60)
        after = pool.submit(young_objects).result(timeout=60)
    assert threshold == (50_000, *gc.get_threshold()[1:])
    assert during >= 5_000  # not collected while the task ran
    assert after < 1_000  # collected once it had answered


# A pool whose one worker was replaced by one the zygote forked, then shut
# down or killed; run under support.subreaper, which finds whatever the pool
# left unreaped, its own children or the zygote's.
_POOL = """
import os, signal, sys

from signkit.workers import WorkerPool


def pid():
    return os.getpid()


def die():
    os.kill(os.getpid(), signal.SIGKILL)


pool = WorkerPool(1, depth=1)
first = pool.submit(pid).result(timeout=60)
pool.submit(die).exception(timeout=60)
# The one worker now is a replacement, forked by the zygote.
assert pool.submit(pid).result(timeout=60) != first
if sys.argv[1] == "kill":
    pool.kill()
    pool.shutdown(wait=False)
else:
    pool.shutdown(wait=True)
"""


@pytest.mark.parametrize("how", ["shutdown", "kill"])
def test_a_pool_leaves_no_process_behind(how: str, tmp_path: Path) -> None:
    """Regression: the zygote was told to stop but never waited for, so every
    run left a process behind (a zombie for whoever adopts it: under a
    container's first process that never reaps, one more a scheduled run),
    and a replacement worker could outlive the zygote that forked it."""
    import subprocess
    import sys

    from support.subreaper import under_subreaper

    left = tmp_path / "left.txt"
    proc = subprocess.run(
        under_subreaper(left, sys.executable, "-c", _POOL, how),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert left.read_text() == "", f"left behind (pid:state): {left.read_text()}"
