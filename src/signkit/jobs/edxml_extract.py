"""``verify --extract-attachments``: the attachments of verified edXML packages
written to a folder, each package's files announced in the audit log before
they are written and recorded with their SHA-256 after."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from signkit.audit.log import AuditLog
from signkit.formats.edxml import extract_package
from signkit.jobs.report import DocumentResult


def extract_packages(
    documents: Sequence[DocumentResult],
    directory: Path,
    *,
    audit_path: Path | None,
    warn: Callable[[str], None],
    info: Callable[[str], None],
) -> None:
    """Extract every package that was read and is not FAILED into
    ``directory/<package>/``; a FAILED one is named in a warning and left alone."""
    audit = AuditLog(audit_path) if audit_path is not None else None
    try:
        for d in documents:
            # only packages a worker read within its budget, and none proven altered
            if d.verdict is None or d.verdict["format"] != "edxml":
                continue
            package = d.input
            if d.verdict["indication"] == "FAILED":
                warn(f"{package}: attachments not extracted (the package is FAILED)")
                continue
            if audit is not None:
                audit.add({"type": "extract-intent", "input": package, "directory": str(directory)})
                audit.commit()
            written = extract_package(Path(package), directory)
            if audit is not None:
                outputs = [
                    {"output": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                    for p in written
                ]
                audit.add({"type": "extract-result", "input": package, "outputs": outputs})
                audit.commit()
            for path in written:
                info(f"{package}: {path}")
    finally:
        if audit is not None:
            audit.close()
