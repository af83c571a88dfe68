"""The machine report's document entries: every field, as the dataclass holds it."""

from __future__ import annotations

import dataclasses
import json

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
