"""`signkit verify` over an archive: what the main process holds for each
document while the run goes on (a province verifies 100,000 documents)."""

from __future__ import annotations

import dataclasses
import gc
import shutil
import tracemalloc
from pathlib import Path
from typing import Any

from signkit.jobs.engine import Events
from signkit.jobs.report import Spill, StoredJSON
from support.xmldocs import xmlsec_sign

DOCUMENTS = 400


class Quiet(Events):
    def document_done(self, result: Any) -> None:
        pass


def _archive(tmp_path: Path) -> Path:
    signed = xmlsec_sign(tmp_path / "made", "signer-vn")
    archive = tmp_path / "archive"
    archive.mkdir()
    for i in range(DOCUMENTS):
        shutil.copyfile(signed, archive / f"hoa-don-{i:06d}.xml")
    return archive


def _verify(archive: Path, trust: Path, store: Spill | None) -> tuple[Any, int]:
    """The run's report, and the bytes of Python objects it left behind per
    document (allocations still alive after the run, the plan excluded)."""
    from signkit.jobs.verify_job import (
        VerifyJobSpec,
        VerifyReport,
        plan,
        preload,
        verify_documents,
    )
    from signkit.verify.policy import VerifyPolicy

    spec = VerifyJobSpec(
        inputs=(str(archive),),
        policy=VerifyPolicy(anchors=(trust.read_bytes(),), offline=True),
        jobs=2,
    )
    tasks = plan(spec)
    preload()
    report = VerifyReport(command="verify", store=store)
    gc.collect()
    tracemalloc.start()
    try:
        before, _peak = tracemalloc.get_traced_memory()
        verify_documents(spec, events=Quiet(), report=report, tasks=tasks)
        gc.collect()
        after, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, (after - before) // DOCUMENTS


def test_verdicts_wait_in_a_temp_file_not_in_memory(tmp_path: Path, trust: Path) -> None:
    archive = _archive(tmp_path)
    store = Spill()
    spilled, held = _verify(archive, trust, store)
    in_memory, _held = _verify(archive, trust, None)
    assert spilled.verdicts() == {"PASSED": DOCUMENTS, "INDETERMINATE": 0, "FAILED": 0}
    assert all(isinstance(d.verdict, StoredJSON) for d in spilled.documents)
    # Before, each document held its verdict as Python objects (about 4 KB
    # here, more with longer chains and more signatures), beside a result
    # with a dict of its own.
    assert held < 1_200, f"{held:,} bytes held per document"
    # The same report either way.
    for report in (spilled, in_memory):
        report.finished = report.started
    spilled.started = in_memory.started
    spilled.finished = in_memory.finished
    assert spilled.to_json() == in_memory.to_json()
    assert [d.verdict_json() for d in spilled.documents] == [
        dataclasses.replace(d).verdict for d in in_memory.documents
    ]
    store.close()
