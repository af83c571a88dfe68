"""What every format's finish stage hands back to the batch engine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    """A complete, checked temp file ready to publish."""

    index: int
    temp: str
    sha256_after: str
    signing_time: str
    level: str
    warnings: tuple[str, ...] = ()
    """What a person should see about this document (e.g. a tax code mismatch)."""
    size_after: int | None = None
    synced: bool = True
    """False: the data is not fsynced yet; the engine syncs it before the rename
    (many files' syncs at once share the file system's journal commits)."""
