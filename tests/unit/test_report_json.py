"""The machine report's document entries: every field, as the dataclass holds it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from signkit.jobs.report import BatchReport, DocumentResult, Status


def _full_result() -> DocumentResult:
    values = {
        f.name: f"value-{f.name}"
        for f in dataclasses.fields(DocumentResult)
        if f.name not in ("status", "options", "verdict", "error_code")
    }
    return DocumentResult(
        **values,
        status=Status.FAILED,
        error_code=3,
        options={"preset": "nd30-leader"},
        verdict={"format": "pdf", "signatures": [{"indication": "PASSED", "chain": ["a", "b"]}]},
    )


def test_a_document_entry_has_every_field_with_its_value() -> None:
    doc = _full_result()
    report = BatchReport(command="verify", documents=[doc])
    entry = report.to_json()["documents"][0]
    # The standard library's conversion is the reference for the shape.
    expected = {**dataclasses.asdict(doc), "status": "failed"}
    assert entry == expected
    assert json.loads(json.dumps(entry)) == expected


def test_the_json_options_are_a_copy() -> None:
    doc = _full_result()
    entry = BatchReport(command="sign pdf", documents=[doc]).to_json()["documents"][0]
    entry["options"]["preset"] = "changed"
    assert doc.options == {"preset": "nd30-leader"}


# ------------------------------------------------------------ writing it in pieces

_SHAPES: list[dict[str, object]] = [
    {"a": 1},
    {"empty list": [], "empty dict": {}, "null": None, "true": True, "float": 0.5},
    {"nested": {"list": [1, [2, [3, {"x": "y"}]], {}], "dict": {"k": {"k": []}}}},
    {"text": 'Quyết định số 12/QĐ-UBND\nline two\t"quoted" \\ \u2028 end', "key\nbreak": "v"},
    {"documents": [{"a": [1, 2]}, {"b": {"c": None}}], "verdicts": {"PASSED": 2}},
]


def _streamed(data: dict[str, object], items: str | None = None) -> str:
    from signkit.jobs.report import Items, stream_json

    if items is not None:
        data = {**data, items: Items(iter(data[items]))}  # type: ignore[call-overload]
    parts: list[str] = []
    stream_json(data, parts.append)
    return "".join(parts)


def test_the_report_written_in_pieces_is_the_standard_librarys_text() -> None:
    for shape in _SHAPES:
        expected = json.dumps(shape, ensure_ascii=False, indent=2) + "\n"
        assert _streamed(shape) == expected
        for key, value in shape.items():
            if isinstance(value, list):
                assert _streamed(shape, key) == expected


def test_a_whole_report_reads_back_as_its_json() -> None:
    from signkit.jobs.report import stream_json
    from signkit.jobs.verify_job import VerifyReport

    report = BatchReport(command="sign pdf", documents=[_full_result(), DocumentResult(input="b")])
    judged = dataclasses.replace(_full_result(), verdict={"indication": "PASSED", "format": "xml"})
    verify = VerifyReport(command="verify", documents=[judged])
    for each in (report, verify, BatchReport(command="sign xml")):
        each.finished = each.started  # not "now", which moves between the two calls
        text: list[str] = []
        stream_json(each.pieces(), text.append)
        assert json.loads("".join(text)) == each.to_json()
    assert list(verify.to_json())[-2:] == ["documents", "verdicts"]


def test_a_large_report_is_written_without_holding_its_text(tmp_path: Path) -> None:
    """A run over 100,000 documents: writing its report must not hold the whole
    text (nor a list of every entry) in memory, only one entry at a time."""
    import tracemalloc

    docs = [
        DocumentResult(
            input=f"/srv/inbox/quyet-dinh-{i:06d}.pdf",
            output=f"/srv/outbox/quyet-dinh-{i:06d}.pdf",
            status=Status.SIGNED,
            sha256_before=f"{i:064x}",
            sha256_after=f"{i + 1:064x}",
            signer_sha256="ab" * 32,
            level="B-LT",
            signing_time="2026-12-07T10:00:00+07:00",
            options={"preset": "nd30-leader"},
        )
        for i in range(20_000)
    ]
    report = BatchReport(command="sign pdf", documents=docs)
    target = tmp_path / "report.json"
    tracemalloc.start()
    try:
        with report.write(target) as written:
            head = written.read(1)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = target.stat().st_size
    assert head == b"{" and size > 12_000_000
    # Before, the text, its bytes and every entry's dict were held at once
    # (several times the file's size).
    assert peak < 2_000_000, f"peak {peak:,} bytes while writing {size:,}"
    assert json.loads(target.read_text("utf-8"))["totals"]["signed"] == 20_000


MERGE_MEMORY = """
import json, sys, tracemalloc
from signkit.cli import run
parts, target = sys.argv[1:-1], sys.argv[-1]
run(["report", "merge", *parts, "-o", target])  # the command's own imports, once
tracemalloc.start()
loaded = [json.loads(open(p, encoding="utf-8").read()) for p in parts]
_size, load_peak = tracemalloc.get_traced_memory()
del loaded
tracemalloc.reset_peak()
code = run(["report", "merge", *parts, "-o", target])
_size, merge_peak = tracemalloc.get_traced_memory()
print(json.dumps({"code": code, "load": load_peak, "merge": merge_peak}), file=sys.stderr)
"""


def test_a_merged_report_is_written_without_holding_its_text(tmp_path: Path) -> None:
    """`report merge` joins the parts of a run split over hosts (an archive):
    it holds the parts it read, but writes the whole one document at a time."""
    import subprocess
    import sys

    parts = []
    for part in range(2):
        docs = [
            DocumentResult(
                input=f"/srv/archive/{part}/van-ban-{i:06d}.pdf",
                status=Status.VERIFIED,
                sha256_before=f"{i:064x}",
                verdict={"indication": "PASSED", "format": "pdf", "signatures": [{"i": i}]},
            )
            for i in range(1_500)
        ]
        path = tmp_path / f"part-{part}.json"
        BatchReport(command="verify", documents=docs).write(path).close()
        parts.append(str(path))
    target = tmp_path / "whole.json"
    proc = subprocess.run(
        [sys.executable, "-c", MERGE_MEMORY, *parts, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    outcome = json.loads(proc.stderr.strip().splitlines()[-1])
    assert outcome["code"] == 0, proc.stderr
    assert len(json.loads(target.read_text("utf-8"))["documents"]) == 3_000
    # Reading the parts is the floor; before, the text, its bytes and the
    # encoder's pieces came on top of it (more than twice the floor).
    assert outcome["merge"] < 1.5 * outcome["load"], outcome


# ------------------------------------------------------------ verdicts kept in a temp file

_VERDICT = {
    "input": "/srv/archive/Quyết định 12.xml",
    "format": "xml",
    "indication": "PASSED",
    "signatures": [{"chain": ["CN=Nguyễn Văn An", "CN=CA"], "warnings": [], "detail": None}],
}


def test_a_kept_verdict_reads_back_as_it_was_and_answers_its_known_keys_from_memory() -> None:
    from signkit.jobs.report import Spill, StoredJSON

    spill = Spill()
    kept = [spill.keep({**_VERDICT, "n": n}, ("indication", "format")) for n in range(3)]
    assert all(isinstance(k, StoredJSON) for k in kept)
    assert [k["n"] for k in kept] == [0, 1, 2]
    assert dict(kept[1]) == {**_VERDICT, "n": 1} and kept[1].load() == {**_VERDICT, "n": 1}
    assert len(kept[2]) == 5 and "signatures" in kept[2] and "missing" not in kept[2]
    doc = DocumentResult(input="a", status=Status.VERIFIED, verdict=kept[0])
    assert doc.to_json()["verdict"] == {**_VERDICT, "n": 0}
    assert json.loads(json.dumps(doc.to_json()))["verdict"]["input"] == _VERDICT["input"]
    spill.close()
    # Counts and filters read only what is held in memory: no read, so no error.
    assert kept[0]["indication"] == "PASSED" and kept[0]["format"] == "xml" and bool(kept[0])
    from signkit.errors import OutputError

    with pytest.raises(OutputError, match="cannot read the run's results back"):
        kept[0].load()


def test_a_full_disk_keeps_the_verdicts_in_memory_and_loses_none() -> None:
    """The temp file's disk fills up mid-run: the verdicts from then on stay in
    memory; those already written still read back."""
    import errno

    from signkit.jobs.report import Spill, StoredJSON

    room = [3_000]

    def write(fd: int, data: bytes | memoryview) -> int:
        if room[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        written = os.write(fd, bytes(data[: room[0]]))
        room[0] -= written
        return written

    spill = Spill(write=write)
    values = [{**_VERDICT, "n": n, "pad": "x" * 500} for n in range(12)]
    kept = [spill.keep(v, ("indication",)) for v in values]
    stored = [k for k in kept if isinstance(k, StoredJSON)]
    assert 0 < len(stored) < len(kept)
    assert all(isinstance(k, dict) for k in kept[len(stored) :])
    doc_json = [DocumentResult(input="a", verdict=k).to_json()["verdict"] for k in kept]
    assert doc_json == values
    spill.close()
