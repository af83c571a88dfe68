"""The worker processes of a batch: forked (fast; nothing PKCS#11 is loaded
yet, so no token state is ever duplicated), dying with the main process, and
warmed up ahead of their first document. A light module on purpose."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


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


def ready() -> bool:
    """A no-op task: submitting it makes the pool fork a worker now."""
    return True


def start_pool(jobs: int, *, warm_first: tuple[str, str] | None = None) -> ProcessPoolExecutor:
    """Fork ``jobs`` workers (0 = one per CPU) now; one starts ``warm_first``
    (module, function) at once, the others wait so as not to compete with
    this process's own start-up for the CPUs."""
    workers = jobs or os.cpu_count() or 2
    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_init)
    if warm_first is not None:
        pool.submit(warm, *warm_first)
    for _ in range(workers - (1 if warm_first is not None else 0)):
        pool.submit(ready)
    return pool
