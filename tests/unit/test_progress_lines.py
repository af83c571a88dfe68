"""Progress lines off a terminal: every N documents, and at least every 30
seconds while documents remain (a clock handed in; the timer thread only
calls tick(), tested here by calling it)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from signkit.cli.context import Output
from signkit.cli.progress import INTERVAL, ProgressLines


@dataclass
class Doc:
    status: str


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_every_n_documents(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    progress = ProgressLines(Output(), 7, every=3, clock=clock, timer=False)
    for status in ["signed", "signed", "failed", "signed", "skipped", "signed", "signed"]:
        clock.now += 1
        progress.document_done(Doc(status))
    assert lines(capsys) == [
        "progress: 3 of 7 documents done (1 failed, 2 signed), 0m03s elapsed",
        "progress: 6 of 7 documents done (1 failed, 4 signed, 1 skipped), 0m06s elapsed",
    ]  # the last document is the summary's to tell


def test_every_30_seconds_even_while_one_document_takes_long(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert INTERVAL == 30
    clock = Clock()
    progress = ProgressLines(Output(), 1000, every=100, clock=clock, timer=False)
    progress.document_done(Doc("signed"))
    clock.now += 29.9
    progress.tick()
    assert lines(capsys) == []
    clock.now += 0.1  # 30 s since the start, and still only one document done
    progress.tick()
    progress.tick()  # not again before another 30 s
    assert lines(capsys) == ["progress: 1 of 1000 documents done (1 signed), 0m30s elapsed"]
    clock.now += 45
    progress.document_done(Doc("signed"))  # 45 s since the last line: one now
    assert lines(capsys) == ["progress: 2 of 1000 documents done (2 signed), 1m15s elapsed"]


def test_quiet_shows_no_progress(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    progress = ProgressLines(Output(quiet=True), 10, every=1, clock=clock, timer=False)
    progress.document_done(Doc("signed"))
    clock.now += 60
    progress.tick()
    assert lines(capsys) == []


def test_the_timer_thread_stops_with_close() -> None:
    progress = ProgressLines(Output(), 10, every=5)
    assert progress.thread is not None and progress.thread.is_alive()
    progress.close()
    assert not progress.thread.is_alive()
