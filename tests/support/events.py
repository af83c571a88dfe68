"""Waiting for something to happen (a file, a record, a process state), never
for a guessed amount of time."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], *, what: str, timeout: float = 120) -> None:
    """Return as soon as ``condition()`` is true; fail the test, saying ``what``
    was awaited, if it is not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
