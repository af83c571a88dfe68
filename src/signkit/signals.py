"""Stopping a run: SIGINT and SIGTERM mean the same (what a person, systemd
and `timeout` send), and either ends any run promptly with its summary,
report and audit records."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop; ``signum`` says by which signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report a run ended by it."""
        return 128 + self.signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def install_stop_handlers() -> None:
    """Entry point: SIGTERM interrupts like Ctrl-C (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for signum in _STOP_SIGNALS:
            signal.signal(signum, _raise)


class StopFlag:
    """SIGINT/SIGTERM recorded as a flag while a batch runs, checked between
    steps (an exception raised inside a lock of concurrent.futures could
    deadlock the pool); ``restore`` puts the previous handlers back."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._note)

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = signum

    def check(self) -> None:
        """Raise Interrupted if a stop signal arrived."""
        if self.signum is not None:
            raise Interrupted(self.signum)

    def restore(self) -> None:
        """Put the handlers back (idempotent)."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def catch_stop_signals() -> StopFlag:
    """Start recording stop signals as a flag (see StopFlag)."""
    return StopFlag()
