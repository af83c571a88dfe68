"""The batch's worker pool: real forked processes, one pipe each."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import wait

import pytest

from signkit.errors import InputFormatError
from signkit.workers import Limits, WorkerLostError, WorkerPool, limited_call


def pid_and_square(n: int) -> tuple[int, int]:
    if n == 3:
        raise InputFormatError("three is not allowed", subject=f"doc{n}")
    return os.getpid(), n * n


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


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
        busy = pool.submit(nap, 0.3)
        queued = [pool.submit(nap, 0) for _ in range(3)]
        assert all(f.cancel() for f in queued)  # still here, not sent
        assert not busy.cancel()  # already with the worker
        assert busy.result() != os.getpid()
    assert all(f.cancelled() for f in queued)


def test_shutdown_cancel_futures_drops_what_waits() -> None:
    pool = WorkerPool(1, depth=1)
    busy = pool.submit(nap, 0.2)
    queued = pool.submit(nap, 0)
    pool.shutdown(wait=True, cancel_futures=True)
    assert busy.result() and queued.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(nap, 0)


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
        first = pool.submit(nap, 0).result(timeout=10)
        dead = pool.submit(die)
        waiting = pool.submit(nap, 0)
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
        before = pool.submit(nap, 0).result(timeout=10)
        hog = pool.submit(limited_call, limits, allocate, 512 << 20)
        after = pool.submit(limited_call, limits, allocate_and_pid, 1 << 20)
        error = hog.exception(timeout=30)
        assert isinstance(error, InputFormatError) and "memory budget of 64 MiB" in str(error)
        size, pid = after.result(timeout=30)
        assert size == 1 << 20 and pid != before
    finally:
        pool.shutdown(wait=True)


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
    pids = {pool.submit(nap, 0.05).result(timeout=10) for _ in range(4)}
    pool.shutdown(wait=True)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_tasks_go_to_the_worker_given_its_warm_up_not_to_a_cold_one() -> None:
    with WorkerPool(2) as pool:
        warming = pool.warm_up(nap, 0.3)
        first = pool.submit(nap, 0)  # the other worker is idle, but cold
        assert first.result(timeout=10) == warming.result(timeout=10)


def test_the_others_warm_after_the_first_and_then_take_tasks() -> None:
    with WorkerPool(2) as pool:
        first = pool.warm_up(nap, 0.1).result(timeout=10)
        time.sleep(0.5)  # the second worker's warm-up (0.1 s) is done by now
        busy = [pool.submit(nap, 0.2) for _ in range(4)]
        pids = {f.result(timeout=10) for f in busy}
    assert first in pids and len(pids) == 2


def slow_on_the_second(first_pid: int) -> int:
    """0.05 s on the worker forked first, 60 s on the others."""
    time.sleep(0.05 if os.getpid() == first_pid else 60)
    return os.getpid()


def test_a_worker_still_warming_when_the_batch_ends_is_stopped() -> None:
    pool = WorkerPool(2)
    first = pool.warm_up(slow_on_the_second, pool._slots[0].process.pid)
    first.result(timeout=10)
    time.sleep(0.2)  # the second worker is now "importing" for 60 s
    started = time.monotonic()
    pool.shutdown(wait=True)
    assert time.monotonic() - started < 30  # not the 60 s of the warm-up
    assert not any(slot.process.is_alive() for slot in pool._slots)
