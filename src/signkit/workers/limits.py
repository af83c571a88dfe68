"""The budget of one document in a worker: address space and time per call.
Over it, the document fails as malformed; after a call that ran out of
memory the worker leaves (its heap may be in pieces) and is replaced."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signkit.errors import InputFormatError


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The budget of one document in a worker (None: no limit)."""

    memory_bytes: int | None = 1 << 30
    """Address space a call may add to the worker's."""
    seconds: float | None = 120.0
    """Wall-clock time of a call."""


def limited_call(limits: Limits, fn: Callable[..., Any], *args: Any) -> Any:
    """Worker: ``fn(*args)`` within ``limits``; over budget it raises an
    InputFormatError (the document is treated as malformed). Limits apply to
    a whole process: off a process's main thread the call runs unlimited."""
    import resource

    if threading.current_thread() is not threading.main_thread():
        return fn(*args)

    old_as = resource.getrlimit(resource.RLIMIT_AS)
    previous_alarm: list[Any] = []

    def restore() -> None:
        if previous_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous_alarm[0])
        resource.setrlimit(resource.RLIMIT_AS, old_as)

    over: str | None = None
    # The alarm fires once, at any bytecode boundary up to its disarming:
    # inside the call, in the MemoryError handler or in restore() itself.
    # The outer handler catches it wherever it lands and restores again.
    try:
        try:
            if limits.memory_bytes is not None:
                ceiling = _address_space() + limits.memory_bytes
                if old_as[1] != resource.RLIM_INFINITY:
                    ceiling = min(ceiling, old_as[1])
                resource.setrlimit(resource.RLIMIT_AS, (ceiling, old_as[1]))
            if limits.seconds is not None:
                previous_alarm.append(signal.signal(signal.SIGALRM, _out_of_time))
                signal.setitimer(signal.ITIMER_REAL, limits.seconds)
            return fn(*args)
        except MemoryError:
            over = "memory"
        finally:
            restore()
    except _OutOfTime:
        over = "time"
        restore()
    # Out of the handler: the failed call's frames (and what they held) are
    # released before anything new is built.
    if over == "memory":
        global _RETIRE
        _RETIRE = True  # its heap may be in pieces: a fresh worker takes over
        budget = _mib(limits.memory_bytes)
        raise InputFormatError(
            f"needs more than the memory budget of {budget} (malformed or hostile?)",
            hint="raise it with --doc-memory MiB if the document is genuine",
        )
    seconds = f"{limits.seconds:g}"
    raise InputFormatError(
        f"took longer than the time budget of {seconds} s (malformed or hostile?)",
        hint="raise it with --doc-timeout SECONDS if the document is genuine",
    )


class _OutOfTime(BaseException):
    """Raised by SIGALRM in a worker (a BaseException: no library swallows it)."""


def _out_of_time(_signum: int, _frame: Any) -> None:
    raise _OutOfTime


def _address_space() -> int:
    """This process's virtual memory size in bytes. The statm file stays open
    (a worker asks twice per document); it names the process that opened it,
    so a forked child closes its copy and opens its own."""
    global _STATM
    pid = os.getpid()
    if _STATM is None or _STATM[0] != pid:
        if _STATM is not None:
            os.close(_STATM[1])
            _STATM = None
        _STATM = (pid, os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC))
    return int(os.pread(_STATM[1], 128, 0).split()[0]) * _PAGE


_PAGE = os.sysconf("SC_PAGE_SIZE")
_STATM: tuple[int, int] | None = None
"""(pid, descriptor of that process's statm file)."""


def _mib(value: int | None) -> str:
    return "no limit" if value is None else f"{value >> 20} MiB"


_RETIRE = False
"""Set in a worker whose call ran out of memory: it leaves after answering."""


class WorkerLostError(InputFormatError):
    """The worker running a task ended (it outlived its budget, or crashed on
    the document): the document is treated as malformed."""


def retiring() -> bool:
    """Whether this worker ran out of memory on a call and should leave."""
    return _RETIRE
