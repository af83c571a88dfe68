"""The engine makes each finished temp file durable before it is renamed into
place: a format's finish stage may leave the fsync to it (``synced=False``),
so that many documents' syncs run at once and share the file system's
journal commits. A file whose sync fails is never published."""

from __future__ import annotations

import errno
import fcntl
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from signkit.formats.finished import Finished
from signkit.formats.plugin import OutputState, Stages
from signkit.jobs import engine
from signkit.jobs.inputs import DocumentTask
from signkit.jobs.outputs import PlannedDoc
from signkit.jobs.report import BatchReport, DocumentResult, Status
from signkit.workers import Limits


@dataclass(frozen=True)
class _Options:
    level: str = "B-B"


@dataclass(frozen=True)
class _Item:
    index: int
    temp: Path


@dataclass(frozen=True)
class _Prepared:
    index: int
    temp: Path
    to_sign: bytes
    sha256_before: str = "0" * 64
    size_before: int = 4


class _Plugin:
    name = "test"

    def output_state(self, doc: object, signer_sha256: str) -> OutputState:
        return OutputState.FOREIGN


class _Events:
    def document_done(self, result: DocumentResult) -> None:
        pass


def _prepare(item: _Item) -> _Prepared:
    return _Prepared(index=item.index, temp=item.temp, to_sign=b"doc%d" % item.index)


def _finish(prepared: _Prepared, signature: bytes) -> Finished:
    prepared.temp.write_bytes(signature)
    return Finished(
        index=prepared.index,
        temp=str(prepared.temp),
        sha256_after="1" * 64,
        signing_time="",
        level="B-B",
        synced=False,
    )


def _run(tmp_path: Path, n: int) -> tuple[BatchReport, list[Path]]:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    docs = []
    for i in range(n):
        (src / f"d{i}.txt").write_bytes(b"data")
        docs.append(
            PlannedDoc(
                task=DocumentTask(input=src / f"d{i}.txt"),
                output=out / f"d{i}.txt",
                in_place=False,
                options=_Options(),  # type: ignore[arg-type]
            )
        )
    report = BatchReport(command="sign test")
    with ThreadPoolExecutor(2) as pool:
        engine.run_batch(
            docs=docs,
            plugin=_Plugin(),  # type: ignore[arg-type]
            stages=Stages(
                prepare=_prepare,  # type: ignore[arg-type]
                finish=_finish,  # type: ignore[arg-type]
                make_item=lambda index, planned, temp: _Item(index, temp),
            ),
            sign=lambda data: b"signed:" + data,
            executor=pool,
            report=report,
            audit=None,
            events=_Events(),
            spec=engine.EngineSpec(limits=Limits(memory_bytes=None, seconds=None)),
            signer_sha256="2" * 64,
            workers=2,
        )
    return report, [d.output for d in docs]


def test_every_unsynced_temp_file_is_synced_before_its_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = engine.fsync_file

    def spy(path: Path | str) -> None:
        real(path)
        synced.append(os.path.basename(path))

    published: list[str] = []
    real_publish = engine.publish

    def check_publish(temp: Path, final: Path, *, replaces: Path | None) -> None:
        assert temp.name in synced, f"{final.name} renamed before its data was synced"
        published.append(final.name)
        real_publish(temp, final, replaces=replaces)

    monkeypatch.setattr(engine, "fsync_file", spy)
    monkeypatch.setattr(engine, "publish", check_publish)
    report, outputs = _run(tmp_path, 12)
    assert sorted(published) == sorted(p.name for p in outputs)
    assert len(synced) == 12
    assert all(r.status is Status.SIGNED for r in report.documents)
    assert outputs[3].read_bytes() == b"signed:doc3"


def test_a_temp_file_whose_sync_fails_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.fsync_file

    def failing(path: Path | str) -> None:
        if os.path.basename(path).count("d5.txt"):
            raise OSError(errno.EIO, "Input/output error")
        real(path)

    monkeypatch.setattr(engine, "fsync_file", failing)
    report, outputs = _run(tmp_path, 8)
    statuses = {Path(r.output or "").name: r for r in report.documents}
    assert statuses["d5.txt"].status is Status.FAILED
    assert "Input/output error" in (statuses["d5.txt"].error_message or "")
    assert not outputs[5].exists()
    assert [p for p in outputs if p.exists()] == [p for p in outputs if p.name != "d5.txt"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_a_stopped_batch_does_not_wait_for_a_slow_sync(tmp_path: Path) -> None:
    """Regression: after a stop signal the engine waited for every fsync (many
    seconds on a busy disk), past the two seconds a stop may take. A document
    whose data is not durable by the deadline is not published."""
    import time
    from concurrent.futures import Future

    from signkit.jobs.outputs import InputLock

    (tmp_path / "d.txt").write_bytes(b"data")
    planned = PlannedDoc(
        task=DocumentTask(input=tmp_path / "d.txt"),
        output=tmp_path / "d.out",
        in_place=False,
        options=_Options(),  # type: ignore[arg-type]
    )
    result = DocumentResult(input=str(planned.input), output=str(planned.output))
    temp = tmp_path / ".d.out.tmp"
    temp.write_bytes(b"signed")
    stuck: Future[None] = Future()  # an fsync that does not come back
    doc = engine._Doc(planned=planned, result=result, lock=InputLock(planned.input), temp=temp)
    doc.finished = Finished(
        index=0, temp=str(temp), sha256_after="1" * 64, signing_time="", level="B-B"
    )
    doc.sync = stuck
    run = engine._Run(BatchReport(command="sign test"), None, _Events(), "2" * 64, "test")
    run.indices = {id(result): 0}
    run.pending_commit = [doc]
    start = time.monotonic()
    engine._commit_group(run, deadline=start + 0.2)
    assert time.monotonic() - start < 1.0
    assert result.status is Status.NOT_ATTEMPTED and "durable" in (result.reason or "")
    assert not planned.output.exists() and not temp.exists()


def test_an_input_whose_holder_let_go_meanwhile_is_taken_not_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (a two-run test that failed now and then): the other run let
    go of an input between this run's refused flock and the look-up of the
    holder in /proc/locks, so the document was left as "locked by another
    signkit run" without a pid, though it was free (and signed by then). The
    lock is now tried again; a holder still there is named."""
    from signkit.jobs import outputs

    doc = tmp_path / "d.pdf"
    doc.write_bytes(b"%PDF-1.7\n")
    other = os.open(doc, os.O_RDONLY)  # another run's lock: its own open file
    fcntl.flock(other, fcntl.LOCK_EX)
    held = outputs.InputLock(doc)
    assert held.acquire() == os.getpid()  # still held: its holder is named
    real = outputs._flock_holder

    def lets_go_meanwhile(st: os.stat_result) -> int:
        os.close(other)  # the other run finishes the document just now
        return real(st)

    monkeypatch.setattr(outputs, "_flock_holder", lets_go_meanwhile)
    lock = outputs.InputLock(doc)
    try:
        assert lock.acquire() is None
    finally:
        lock.release()
