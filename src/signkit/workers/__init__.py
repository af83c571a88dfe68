"""The worker processes of a batch: forked (fast; nothing PKCS#11 is loaded
yet, so no token state is ever duplicated), dying with the main process, and
warmed up ahead of their first document. A light module on purpose.

Every document gets a budget (``Limits``): address space and time per call,
enforced inside the worker (a call over it fails as malformed, the batch
goes on) and, as a backstop, by the pool, which ends a worker that stops
answering. A worker that ended or was ended is replaced by one forked from a
zygote process started with the pool, so a replacement never carries what
the main process holds by then (the token session, the PIN)."""

from __future__ import annotations

import os
import signal

from signkit.workers.limits import Limits, WorkerLostError, limited_call
from signkit.workers.pool import WorkerPool, die_with_parent


def worker_init() -> None:
    """Process-pool initializer: a stop is the main process's; die with it.

    Ctrl-C and a terminal that closes reach the terminal's whole process
    group, and `systemctl stop` sends SIGTERM to every process of the unit:
    the main process stops the run, finishes what the token signed, then
    stops the workers (or kills a stuck one), so the workers ignore all three."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent()


def warm(module: str, function: str) -> None:
    """Worker task: import ``module`` and run its warm-up ``function``."""
    import importlib

    getattr(importlib.import_module(module), function)()


_PRESTARTED: WorkerPool | None = None
_PRESTART_WARMUP: tuple[str, str] | None = None


def default_workers(light: bool = False) -> int:
    """Worker processes when --jobs is not given: one per CPU. For a format
    whose worker stages are light next to what the main process does for each
    document (the token's signature, results, audit records, renames), one CPU
    is left to the main process: more workers would only take turns with it."""
    cpus = os.cpu_count() or 2
    return max(1, cpus - 1) if light else cpus


def prestart(warm_first: tuple[str, str], *, light: bool = False) -> None:
    """Fork one worker per CPU at once and start one importing ``warm_first``
    (module, function): the entry point calls this first thing for a command
    that will sign, so the worker's imports (the PDF stack, ~0.6 s) run while
    this process builds the CLI, plans, opens the token and checks the signer.
    ``start_pool`` adopts the pool; nothing PKCS#11 exists yet, so no token
    state is ever duplicated."""
    global _PRESTARTED, _PRESTART_WARMUP
    if _PRESTARTED is None:
        _PRESTARTED = WorkerPool(default_workers(light), initializer=worker_init)
        _PRESTARTED.warm_up(warm, *warm_first)
        _PRESTART_WARMUP = warm_first


def stop_prestarted() -> None:
    """End and reap the workers ``prestart`` forked if no job took them (the
    run ended before it signed: a usage error, a missing input)."""
    global _PRESTARTED
    pool, _PRESTARTED = _PRESTARTED, None
    if pool is not None:
        pool.kill()


def start_pool(
    jobs: int,
    *,
    documents: int,
    warm_first: tuple[str, str] | None = None,
    light: bool = False,
) -> WorkerPool:
    """The batch's workers: ``jobs`` (0 = ``default_workers(light)``), the
    pre-started pool if it has that many, else forked now and warmed with
    ``warm_first`` (module, function): see ``WorkerPool.warm_up``. A batch of
    fewer ``documents`` than workers keeps only as many (at least one): the
    others would import the format's stack and hold its memory for nothing.
    A pre-started pool given another warm-up (the entry point's guess, made
    before the options were read) is given ``warm_first`` too."""
    global _PRESTARTED
    workers = jobs or default_workers(light)
    pool, _PRESTARTED = _PRESTARTED, None
    if pool is not None and pool.workers == workers:
        pool.shrink(documents)
        if warm_first is not None and warm_first != _PRESTART_WARMUP:
            pool.warm_up(warm, *warm_first)
        return pool
    if pool is not None:
        pool.kill()  # warming up for nothing: ended and reaped
    pool = WorkerPool(max(1, min(workers, documents)), initializer=worker_init)
    if warm_first is not None:
        pool.warm_up(warm, *warm_first)
    return pool


__all__ = [
    "Limits",
    "WorkerLostError",
    "WorkerPool",
    "default_workers",
    "limited_call",
    "prestart",
    "start_pool",
    "stop_prestarted",
    "warm",
    "worker_init",
]
