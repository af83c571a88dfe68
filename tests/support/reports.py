"""Reading the JSON report of a batch in tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def refused_as_input_errors(
    report: Path, src: Path, cases: Mapping[str, tuple[bytes, str]]
) -> dict[str, dict[str, Any]]:
    """The report's documents by file name, after checking that each case (file
    name -> (its bytes, its reason)) failed as an input error (3) giving its
    reason, and that its input is as it was."""
    docs = {Path(d["input"]).name: d for d in json.loads(report.read_text())["documents"]}
    for name, (data, reason) in cases.items():
        doc = docs[name]
        assert (doc["status"], doc["error_code"]) == ("failed", 3), doc
        assert reason in doc["error_message"], doc["error_message"]
        assert (src / name).read_bytes() == data
    return docs
