"""Discover the documents of a batch: files, directories, globs and manifests."""

from __future__ import annotations

import csv
import difflib
import glob
import hashlib
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from signkit.errors import EmptyShardError, InputError, NothingToDoError, UsageError

T = TypeVar("T")
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


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count``: the planned documents whose path
    hashes to it. Every part of a run must name its inputs alike (the same
    arguments, or the same manifest), so that each document falls in one part."""

    index: int
    """This part, 1 to ``count``."""
    count: int
    """How many parts the documents are split into."""

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``K/N`` as given to --shard."""
        head, slash, tail = text.partition("/")
        try:
            index, count = int(head), int(tail)
        except ValueError:
            index = count = 0
        if not slash or not 1 <= index <= count:
            raise UsageError(
                "--shard takes K/N with 1 <= K <= N (e.g. 2/8: the second of eight parts)",
                subject=text,
            )
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, path: Path) -> bool:
        """Whether ``path`` falls in this part: SHA-256 of its normalised path,
        modulo the number of parts (the same on every host and every run)."""
        key = os.path.normpath(os.fsdecode(path)).encode("utf-8", "surrogateescape")
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % self.count == (
            self.index - 1
        )

    def select(self, items: Sequence[T], path: Callable[[T], Path]) -> list[T]:
        """The items of this part, in their order; EmptyShardError when none."""
        chosen = [item for item in items if self.holds(path(item))]
        if not chosen:
            raise EmptyShardError(
                f"none of the {len(items)} planned documents falls in shard {self}",
                subject=f"--shard {self}",
            )
        return chosen


def is_own_file(path: Path, suffix: str) -> bool:
    """Our outputs and temp files, which discovery must never pick up again."""
    if path.name.startswith(TEMP_PREFIX):
        return True
    return bool(suffix) and path.stem.endswith(suffix)


def _from_directory(
    directory: Path,
    *,
    recursive: bool,
    extensions: tuple[str, ...],
    suffix: str,
    skipped: list[Path] | None = None,
    exclude: tuple[str, ...] = (),
) -> list[DocumentTask]:
    if recursive:
        candidates = [p for p in sorted(directory.glob("**/*")) if p.is_file()]
    else:
        # One directory: scandir knows each entry's type without a stat per file.
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries if e.is_file())
        candidates = [directory / name for name in names]
    tasks: list[DocumentTask] = []
    for path in candidates:
        if is_own_file(path, suffix):
            continue
        kind = path.suffix.lower()
        if (not extensions or kind in extensions) and kind not in exclude:
            tasks.append(DocumentTask(input=path, root=directory))
        elif skipped is not None:
            skipped.append(path)
    return tasks


def _glob_root(pattern: str) -> Path:
    """The folder a glob pattern searches: its path up to the first wildcard."""
    parts = Path(pattern).parts
    wild = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    return Path(*parts[:wild]) if wild else Path(".")


def discover(
    inputs: Sequence[str],
    *,
    recursive: bool,
    extensions: tuple[str, ...],
    suffix: str,
    manifest: Path | None = None,
    allowed_columns: Iterable[str] = (),
    skipped: list[Path] | None = None,
    exclude: tuple[str, ...] = (),
) -> list[DocumentTask]:
    """Expand the command line (and manifest) into document tasks, in a stable
    order; the files of a directory without a document's extension go into
    ``skipped`` when given. No ``extensions``: every file of a directory, but
    those ending in ``exclude``.

    A folder without documents, or a pattern matching nothing in an existing
    folder, is an empty inbox, not an error; when nothing at all is found,
    NothingToDoError says where signkit looked. A path that does not exist
    is an InputError."""
    tasks: list[DocumentTask] = []
    empty: list[str] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = _from_directory(
                path,
                recursive=recursive,
                extensions=extensions,
                suffix=suffix,
                skipped=skipped,
                exclude=exclude,
            )
            if not found:
                empty.append(raw)
            tasks.extend(found)
        elif path.is_file():
            tasks.append(DocumentTask(input=path))
        elif _GLOB_CHARS & set(raw):
            matches = [Path(m) for m in sorted(glob.glob(raw, recursive=True))]
            files = [
                m
                for m in matches
                if m.is_file() and not is_own_file(m, suffix) and m.suffix.lower() not in exclude
            ]
            if not files and not _glob_root(raw).is_dir():
                raise InputError("the pattern matches no file", subject=raw)
            if not files:
                empty.append(raw)
            tasks.extend(DocumentTask(input=m) for m in files)
        elif path.exists():
            raise InputError("not a regular file or directory", subject=raw)
        else:
            raise InputError("no such file or directory", subject=raw)
    if manifest is not None:
        rows = read_manifest(manifest, allowed_columns=allowed_columns)
        if not rows:
            empty.append(str(manifest))
        tasks.extend(rows)
    if not tasks:
        kinds = "/".join(extensions) or "signable"
        reason = (
            f"no {kinds} files found"
            if recursive or manifest is not None
            else f"no {kinds} files found (use -r to descend into subdirectories)"
        )
        raise NothingToDoError(reason, subject=", ".join(empty) or None)
    return _dedupe(tasks)


def without_detached_data(tasks: list[DocumentTask]) -> list[DocumentTask]:
    """In a directory, the data file of a detached signature beside it (a.pdf
    next to a.pdf.p7s) is what that signature covers, not a document of its
    own: verify and extend leave it out (a file named on the command line is
    always taken)."""
    names = {str(t.input) for t in tasks}
    return [t for t in tasks if t.root is None or str(t.input) + ".p7s" not in names]


def _dedupe(tasks: list[DocumentTask]) -> list[DocumentTask]:
    seen: dict[tuple[str, tuple[tuple[str, str], ...], Path | None], DocumentTask] = {}
    resolve = Resolver()
    for task in tasks:
        key = (resolve(task.input), tuple(sorted(task.options.items())), task.output)
        seen.setdefault(key, task)
    return list(seen.values())


def read_manifest(path: Path, *, allowed_columns: Iterable[str]) -> list[DocumentTask]:
    """CSV (with a header) or JSON Lines; columns are named after the long options.

    CSV as spreadsheets save it: separated by ``,``, ``;`` (Excel under a
    Vietnamese or European locale) or tabs ("Unicode text"), in UTF-8 with or
    without a byte order mark, or UTF-16."""
    allowed = set(allowed_columns) | {"input", "output"}
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError("manifest not found", subject=str(path)) from None
    except OSError as exc:
        raise InputError(
            f"cannot read manifest ({type(exc).__name__})", subject=str(path)
        ) from None
    text = _decode_manifest(raw, path)
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
        rows = _csv_rows(text, path, allowed)
    tasks = []
    base = path.parent
    for number, row in rows:
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


_DELIMITERS = (",", ";", "\t")


def _decode_manifest(raw: bytes, path: Path) -> str:
    """UTF-16 by its byte order mark, else UTF-8 (a BOM is dropped)."""
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            "the manifest is neither UTF-8 nor UTF-16 text",
            subject=str(path),
            hint="save it from the spreadsheet as 'CSV UTF-8' or 'Unicode text'",
        ) from None


def _csv_rows(text: str, path: Path, allowed: set[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV manifest with the line each starts on; the separator is the
    one that splits the header into the most known column names."""
    lines = text.splitlines()
    header_at = next((n for n, line in enumerate(lines) if line.strip()), None)
    if header_at is None:
        return []
    header_line = lines[header_at]

    def known(delimiter: str) -> tuple[int, int]:
        names = next(csv.reader([header_line], delimiter=delimiter))
        return sum(n.strip() in allowed for n in names), header_line.count(delimiter)

    delimiter = max(_DELIMITERS, key=known)
    reader = csv.reader(io.StringIO("\n".join(lines[header_at:])), delimiter=delimiter)
    header = [name.strip() for name in next(reader)]
    offset = header_at  # lines before the header (blank ones)
    unknown = [name for name in header if name and name not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        names = ", ".join(sorted(allowed))
        if close:
            raise UsageError(
                f"line {offset + 1}: unknown column(s) {', '.join(unknown)}",
                subject=str(path),
                hint=f"did you mean {close[0]}? columns are named after the long options: {names}",
            )
        raise UsageError(
            f"line {offset + 1}: unknown column(s) {', '.join(unknown)}",
            subject=str(path),
            hint=f"columns are named after the long options: {names}",
        )
    rows: list[tuple[int, dict[str, str]]] = []
    start = reader.line_num + 1
    for fields in reader:
        number = offset + start
        start = reader.line_num + 1
        if not any(f.strip() for f in fields):
            continue
        if len(fields) > len(header):
            raise InputError(
                f"line {number}: {len(fields)} fields for {len(header)} columns",
                subject=str(path),
                hint=f"the columns are separated by {_SEPARATOR_NAMES[delimiter]}; "
                "a value holding one must be in double quotes",
            )
        values = {name: (value or "").strip() for name, value in zip(header, fields, strict=False)}
        rows.append((number, {k: v for k, v in values.items() if k}))
    return rows


_SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}
