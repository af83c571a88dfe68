"""The engine's batching of worker calls: one future per call, whatever the grouping."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import pytest

from signkit.errors import InputFormatError
from signkit.jobs.batches import Batches


def square(n: int) -> int:
    if n == 3:
        raise InputFormatError("three is not allowed", subject=f"doc{n}")
    return n * n


def twice(n: int) -> int:
    return 2 * n


def test_each_call_keeps_its_result_or_error() -> None:
    with ThreadPoolExecutor(2) as pool:
        batches = Batches(pool, workers=2, size=4)
        futures = [batches.submit(square, n) for n in range(10)]
        batches.flush()
        wait(futures)
    assert [f.result() for f in futures if f.exception() is None] == [
        n * n for n in range(10) if n != 3
    ]
    error = futures[3].exception()
    assert isinstance(error, InputFormatError) and error.subject == "doc3"


def test_held_calls_wait_for_a_full_batch_then_go() -> None:
    with ThreadPoolExecutor(2) as pool:
        batches = Batches(pool, workers=2, size=4)
        first = [batches.submit(twice, n) for n in range(3)]
        batches.flush(hold=twice)
        assert not any(f.done() for f in first) and len(batches.pending) == 3
        more = batches.submit(twice, 3)
        batches.flush(hold=twice)  # four now: a full batch goes
        wait([*first, more])
    assert [f.result() for f in [*first, more]] == [0, 2, 4, 6]


def test_a_call_cancelled_while_queued_never_runs() -> None:
    ran: list[int] = []

    def record(n: int) -> int:
        ran.append(n)
        return n

    with ThreadPoolExecutor(1) as pool:
        batches = Batches(pool, workers=1, size=8)
        keep, drop = batches.submit(record, 1), batches.submit(record, 2)
        assert drop.cancel()
        batches.flush()
        wait([keep])
    assert ran == [1] and keep.result() == 1


def test_a_broken_pool_fails_every_call() -> None:
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    batches = Batches(pool, workers=1, size=8)
    futures = [batches.submit(twice, n) for n in range(3)]
    batches.flush()
    for f in futures:
        with pytest.raises(RuntimeError):
            f.result()
