"""Progress of a batch on stderr: a bar on a terminal; off a terminal (the
journal, a log file, cron), a line every N documents or every 30 seconds, so
a long run is seen to advance before its summary."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .context import Output

INTERVAL = 30.0
"""Seconds between two progress lines at most, however slow the documents."""


class ProgressBar:
    """A rich progress bar on stderr."""

    def __init__(self, out: Output, total: int, what: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.bar: Any = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=out.console(),
            transient=True,
        )
        self.bar.start()
        from signkit.i18n import t

        self.task = self.bar.add_task(t(what), total=total)

    def document_done(self, result: Any) -> None:
        self.bar.advance(self.task)

    def close(self) -> None:
        self.bar.stop()


class ProgressLines:
    """One line on stderr every ``every`` documents, and at least every
    ``interval`` seconds while documents remain (a slow one included)."""

    def __init__(
        self,
        out: Output,
        total: int,
        *,
        every: int,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        timer: bool = True,
    ) -> None:
        self.out = out
        self.total = total
        self.every = every
        self.interval = interval
        self.clock = clock
        self.started = self.last = clock()
        self.done = 0
        self.statuses: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        if timer:
            self.thread = threading.Thread(target=self._run, name="signkit-progress", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(min(1.0, self.interval)):
            self.tick()

    def document_done(self, result: Any) -> None:
        """A document reached its final status."""
        with self.lock:
            self.done += 1
            status = getattr(result, "status", None)
            self.statuses[str(getattr(status, "value", status))] += 1
            if self.done < self.total and (
                self.done % self.every == 0 or self.clock() - self.last >= self.interval
            ):
                self._emit()

    def tick(self) -> None:
        """The timer's turn: a line when none came for ``interval`` seconds."""
        with self.lock:
            if self.done < self.total and self.clock() - self.last >= self.interval:
                self._emit()

    def _emit(self) -> None:
        self.last = self.clock()
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        detail = f" ({counts})" if counts else ""
        seconds = int(self.last - self.started)
        elapsed = f"{seconds // 60}m{seconds % 60:02d}s"
        self.out.info(
            f"progress: {self.done} of {self.total} documents done{detail}, {elapsed} elapsed"
        )

    def close(self) -> None:
        """Stop the timer (the summary follows)."""
        self.stopped.set()
        if self.thread is not None:
            self.thread.join()


class NoProgress:
    """Nothing to show (--quiet, a dry run, a single document)."""

    def document_done(self, result: Any) -> None:
        pass

    def close(self) -> None:
        pass


def progress_for(
    out: Output, total: int, *, every: int, what: str
) -> ProgressBar | ProgressLines | NoProgress:
    """The progress a batch of ``total`` documents shows on this stderr."""
    if total <= 1 or out.quiet:
        return NoProgress()
    if sys.stderr.isatty():
        return ProgressBar(out, total, what)
    if every <= 0:
        return NoProgress()
    return ProgressLines(out, total, every=every)
