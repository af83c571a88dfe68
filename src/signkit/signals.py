"""Stopping a run: SIGINT, SIGTERM and SIGHUP mean the same (what a person,
systemd and `timeout` send, and what a terminal that closes sends), and any
of them ends a run promptly with its summary, report and audit records."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The run was asked to stop; ``signum`` says by which signal."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as shells report a run ended by it."""
        return 128 + self.signum


class SafeStream:
    """stdout or stderr that outlives its reader. A terminal that closed (a
    hangup) or a reader that went away (`| head`, a logger that died) must
    not stop a run halfway: its outputs, report and audit records matter more
    than what it prints. Once a write fails, the rest is dropped, and
    ``broken`` says so (the entry point's exit code then does)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._stream.write(text)
            except OSError:
                self.broken = True
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except OSError:
                self.broken = True

    def isatty(self) -> bool:
        try:
            return not self.broken and bool(self._stream.isatty())
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _heeded() -> list[int]:
    """The stop signals this process heeds: not one it was started ignoring
    (`nohup` ignores SIGHUP so a run outlives its terminal; a shell ignores
    SIGINT for a job in the background), as Python does for SIGINT."""
    return [s for s in _STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]


def install_stop_handlers() -> None:
    """Entry point: SIGTERM and SIGHUP interrupt like Ctrl-C (main thread
    only), and what the run prints never stops it (see SafeStream)."""
    import sys

    if threading.current_thread() is threading.main_thread():
        for signum in _heeded():
            signal.signal(signum, _raise)
    if not isinstance(sys.stdout, SafeStream):
        sys.stdout = SafeStream(sys.stdout)
    if not isinstance(sys.stderr, SafeStream):
        sys.stderr = SafeStream(sys.stderr)


class StopFlag:
    """SIGINT/SIGTERM/SIGHUP recorded as a flag while a batch runs, checked between
    steps (an exception raised inside a lock of concurrent.futures could
    deadlock the pool); ``restore`` puts the previous handlers back."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in _heeded():
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
