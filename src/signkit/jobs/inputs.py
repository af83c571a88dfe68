"""Discover the documents of a batch: files, directories, globs and manifests."""

from __future__ import annotations

import csv
import glob
import json
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from signkit.errors import InputError, UsageError

TEMP_PREFIX = ".signkit-tmp-"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, kw_only=True)
class DocumentTask:
    """One document to process, as the user named it."""

    input: Path
    """The document."""
    root: Path | None = None
    """The directory argument it was found under (mirrored by --output-dir)."""
    output: Path | None = None
    """Output named by a manifest row, as written there (resolved when planned)."""
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Per-document option overrides from a manifest row (raw text)."""
    row: int | None = None
    """Manifest line number, for messages."""
    manifest: Path | None = None
    """The manifest the row comes from."""


class Resolver:
    """``realpath`` for many files in few directories, as text for comparing:
    each directory is resolved once (a batch of a thousand files took five
    full resolutions each, and pathlib's own cost was most of planning)."""

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        text = os.fspath(path)
        head, name = os.path.split(text)
        if name in ("", ".", ".."):
            return os.path.realpath(text)
        try:
            if stat.S_ISLNK(os.lstat(text).st_mode):
                return os.path.realpath(text)  # the link's target is what counts
        except OSError:
            pass  # not there (yet): its directory decides
        resolved = self._dirs.get(head)
        if resolved is None:
            resolved = self._dirs[head] = os.path.realpath(head or os.curdir)
        return os.path.join(resolved, name)


def is_own_file(path: Path, suffix: str) -> bool:
    """Our outputs and temp files, which discovery must never pick up again."""
    if path.name.startswith(TEMP_PREFIX):
        return True
    return bool(suffix) and path.stem.endswith(suffix)


def _from_directory(
    directory: Path, *, recursive: bool, extensions: tuple[str, ...], suffix: str
) -> list[DocumentTask]:
    if recursive:
        candidates = [p for p in sorted(directory.glob("**/*")) if p.is_file()]
    else:
        # One directory: scandir knows each entry's type without a stat per file.
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries if e.is_file())
        candidates = [directory / name for name in names]
    return [
        DocumentTask(input=path, root=directory)
        for path in candidates
        if path.suffix.lower() in extensions and not is_own_file(path, suffix)
    ]


def discover(
    inputs: Sequence[str],
    *,
    recursive: bool,
    extensions: tuple[str, ...],
    suffix: str,
    manifest: Path | None = None,
    allowed_columns: Iterable[str] = (),
) -> list[DocumentTask]:
    """Expand the command line (and manifest) into document tasks, in a stable order."""
    tasks: list[DocumentTask] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = _from_directory(path, recursive=recursive, extensions=extensions, suffix=suffix)
            if not found:
                raise InputError(
                    f"no {'/'.join(extensions)} files found"
                    + ("" if recursive else " (use -r to descend into subdirectories)"),
                    subject=raw,
                )
            tasks.extend(found)
        elif path.is_file():
            tasks.append(DocumentTask(input=path))
        elif _GLOB_CHARS & set(raw):
            matches = [Path(m) for m in sorted(glob.glob(raw, recursive=True))]
            files = [m for m in matches if m.is_file() and not is_own_file(m, suffix)]
            if not files:
                raise InputError("the pattern matches no file", subject=raw)
            tasks.extend(DocumentTask(input=m) for m in files)
        elif path.exists():
            raise InputError("not a regular file or directory", subject=raw)
        else:
            raise InputError("no such file or directory", subject=raw)
    if manifest is not None:
        tasks.extend(read_manifest(manifest, allowed_columns=allowed_columns))
    return _dedupe(tasks)


def _dedupe(tasks: list[DocumentTask]) -> list[DocumentTask]:
    seen: dict[tuple[str, tuple[tuple[str, str], ...], Path | None], DocumentTask] = {}
    resolve = Resolver()
    for task in tasks:
        key = (resolve(task.input), tuple(sorted(task.options.items())), task.output)
        seen.setdefault(key, task)
    return list(seen.values())


def read_manifest(path: Path, *, allowed_columns: Iterable[str]) -> list[DocumentTask]:
    """CSV (with a header) or JSON Lines; columns are named after the long options."""
    allowed = set(allowed_columns) | {"input", "output"}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("manifest not found", subject=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read manifest ({type(exc).__name__})", subject=str(path)
        ) from None
    rows: list[tuple[int, dict[str, str]]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"line {number}: not JSON ({exc.msg})", subject=str(path)
                ) from None
            if not isinstance(obj, dict):
                raise InputError(f"line {number}: not a JSON object", subject=str(path))
            rows.append((number, {str(k): "" if v is None else str(v) for k, v in obj.items()}))
    else:
        reader = csv.DictReader(text.splitlines())
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise InputError(f"line {number}: more fields than columns", subject=str(path))
            rows.append((number, {k.strip(): (v or "").strip() for k, v in row.items() if k}))
    tasks = []
    base = path.parent
    for number, row in rows:
        unknown = sorted(set(row) - allowed)
        if unknown:
            raise UsageError(
                f"line {number}: unknown column(s) {', '.join(unknown)}",
                subject=str(path),
                hint="columns are named after the long options: " + ", ".join(sorted(allowed)),
            )
        name = row.pop("input", "")
        if not name:
            raise InputError(f"line {number}: no input", subject=str(path))
        doc = Path(name) if Path(name).is_absolute() else base / name
        if not doc.is_file():
            raise InputError(f"line {number}: no such file {name}", subject=str(path))
        out = row.pop("output", "")
        output = Path(out) if out else None
        options = {k: v for k, v in row.items() if v != ""}
        tasks.append(
            DocumentTask(
                input=doc,
                output=output,
                options=MappingProxyType(options),
                row=number,
                manifest=path,
            )
        )
    return tasks
