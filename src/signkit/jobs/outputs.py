"""Where outputs go, and how they get there: temp file, fsync, rename, dir fsync.

A crash at any moment leaves either no output or a complete one; temp files
of dead runs are removed by the next run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from signkit.errors import InputError, OutputError, UsageError
from signkit.formats.plugin import DocOptions
from signkit.fsio import open_regular
from signkit.jobs.inputs import TEMP_PREFIX, DocumentTask, Resolver


@dataclass(frozen=True, kw_only=True)
class OutputSpec:
    """How the user asked outputs to be named."""

    output: Path | None = None
    """-o FILE (single input only)."""
    output_dir: Path | None = None
    """--output-dir DIR, mirroring the input tree."""
    suffix: str = "_signed"
    """Next to the input: a.pdf -> a_signed.pdf."""
    in_place: bool = False
    """Replace the input once the signed file is complete and verified."""
    allow_absolute_outputs: bool = False
    """Manifest outputs may be absolute or climb out of their base folder."""


@dataclass(frozen=True, kw_only=True)
class PlannedDoc:
    """A document with its output decided."""

    task: DocumentTask
    """What the user asked for."""
    output: Path
    """Where the result goes."""
    in_place: bool
    """True when ``output`` is the input itself."""
    options: DocOptions
    """The document's options, resolved once (job defaults, then its manifest row)."""

    @property
    def input(self) -> Path:
        """The input document."""
        return self.task.input


def plan_outputs(
    tasks: Sequence[DocumentTask],
    spec: OutputSpec,
    options_of: Callable[[Mapping[str, str]], DocOptions],
    extension_of: Callable[[DocOptions], str] | None = None,
) -> list[PlannedDoc]:
    """Decide every output first; refuse collisions before anything is signed.
    ``options_of`` turns a task's option overrides into its options (validating them).
    ``extension_of``: the output is a file of its own named after the input
    plus this extension (a.docx -> a.docx.p7s), instead of a suffixed copy."""
    if spec.in_place and (spec.output or spec.output_dir):
        raise UsageError("--in-place cannot be combined with -o or --output-dir")
    if spec.output and spec.output_dir:
        raise UsageError("choose one of -o and --output-dir")
    if spec.output and len(tasks) != 1:
        raise UsageError(f"-o takes a single input ({len(tasks)} given); use --output-dir")
    if not (spec.in_place or spec.output or spec.output_dir or spec.suffix or extension_of):
        raise UsageError("an empty --suffix would overwrite the inputs; use --in-place for that")
    planned: list[tuple[PlannedDoc, str, str]] = []
    resolve = Resolver()
    for task in tasks:
        src = task.input
        options = options_of(task.options)
        ext = extension_of(options) if extension_of is not None else ""
        if task.output is not None:
            out, in_place = _manifest_output(task, spec), False
        elif spec.in_place:
            out, in_place = src, True
        elif spec.output:
            out, in_place = spec.output, False
        elif spec.output_dir:
            rel = src.relative_to(task.root) if task.root else Path(src.name)
            out, in_place = spec.output_dir / rel, False
            if ext:
                out = out.with_name(out.name + ext)
        elif ext:
            out, in_place = src.with_name(src.name + ext), False
        else:
            out, in_place = src.with_name(f"{src.stem}{spec.suffix}{src.suffix}"), False
        source = resolve(src)
        target = source if in_place else resolve(out)
        if not in_place and target == source:
            raise OutputError(
                "the output would overwrite the input (use --in-place)", subject=str(src)
            )
        doc = PlannedDoc(task=task, output=out, in_place=in_place, options=options)
        planned.append((doc, source, target))
    seen: dict[str, Path] = {}
    for doc, _source, key in planned:
        if key in seen:
            raise OutputError(
                f"{seen[key]} and {doc.task.input} would both be written to this output",
                subject=str(doc.output),
                hint="use --output-dir with distinct names, or a manifest 'output' column",
            )
        seen[key] = doc.task.input
    inputs: set[str] = set()
    for doc, source, _target in planned:
        if source in inputs:
            # Each input is locked while it is signed: a second row would only
            # find it locked (and two signatures would need two passes anyway).
            raise UsageError(
                "this input is listed twice in the batch",
                subject=str(doc.task.input),
                hint="sign it once per run; to add a second signature, run again on the output",
            )
        inputs.add(source)
    return [doc for doc, _source, _target in planned]


def _manifest_output(task: DocumentTask, spec: OutputSpec) -> Path:
    """A manifest row's output, resolved against --output-dir or the manifest's
    folder. A row could otherwise write anywhere the user can (an absolute
    path elsewhere, ``../`` out of the folder, a symlinked folder leading
    out): refused unless --allow-absolute-outputs."""
    assert task.output is not None  # noqa: S101 - the caller checked
    manifest = task.manifest or Path("manifest")
    base = spec.output_dir or manifest.parent
    out = base / task.output  # an absolute output stays as it is
    if spec.allow_absolute_outputs:
        return out
    inside = os.path.normpath(out).startswith(os.path.join(os.path.normpath(base), ""))
    real_inside = os.path.realpath(out).startswith(os.path.join(os.path.realpath(base), ""))
    if not (inside and real_inside):
        where = f"line {task.row}" if task.row else "a row"
        raise UsageError(
            f"{where}: the output {task.output} lies outside {base}",
            subject=str(manifest),
            hint="name outputs under the manifest's folder (or --output-dir), "
            "or pass --allow-absolute-outputs",
        )
    return out


def temp_path(final: Path) -> Path:
    """An unpredictable temp name in the target directory, tagged with our pid
    (so a later run can tell a dead run's leftovers from a live run's files)."""
    return final.with_name(f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(16)}-{final.name}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temp_files(directories: Iterable[Path]) -> list[Path]:
    """Remove temp files left by runs that died (their pid is gone)."""
    removed = []
    for directory in set(directories):
        try:
            entries = list(directory.glob(f"{TEMP_PREFIX}*"))
        except OSError:
            continue
        for path in entries:
            parts = path.name[len(TEMP_PREFIX) :].split("-", 2)
            if not parts or not parts[0].isdigit():
                continue
            pid = int(parts[0])
            if pid != os.getpid() and _pid_alive(pid):
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def check_writable(directory: Path) -> None:
    """Fail early, per output directory, when we cannot create files there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"cannot create the output directory ({exc.strerror})", subject=str(directory)
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError("output directory is not writable", subject=str(directory))


def check_report_path(path: Path) -> None:
    """Refuse, before anything is signed, a report that could not be written."""
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError("the report path is a directory", subject=str(path))
    if not directory.is_dir():
        raise OutputError("the report's directory does not exist", subject=str(path))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputError("the report's directory is not writable", subject=str(path))


def publish(temp: Path, final: Path, *, replaces: Path | None) -> None:
    """Rename a complete, fsynced temp file into place (keeping mode/owner in place)."""
    if replaces is not None:
        st = replaces.stat()
        os.chmod(temp, st.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):
            os.chown(temp, st.st_uid, st.st_gid)
    os.replace(temp, final)


_LOCK_TRIES = 3
"""Tries at an input's lock whose holder cannot be found (it let go meanwhile,
or /proc/locks cannot tell)."""


class InputLock:
    """An advisory lock on one input so two runs never sign the same document."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> int | None:
        """Lock the input: None when we hold it, else the pid of the process that
        does (0 when it cannot be told). Raises InputError when the input is no
        longer a regular file (opened without blocking: a FIFO never hangs us).

        A holder that is gone by the time it is looked up let go in between
        (the other run finished the document): the lock is tried again, so the
        document is judged as it now is (signed: skipped) rather than left."""
        fd = open_regular(self.path)
        holder = 0
        for _ in range(_LOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise InputError(
                        f"cannot lock ({exc.strerror})", subject=str(self.path)
                    ) from None
                holder = _flock_holder(os.fstat(fd))
                if holder:
                    break
                continue
            self._fd = fd
            return None
        os.close(fd)
        return holder

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _flock_holder(st: os.stat_result) -> int:
    """The pid holding a flock on the file of ``st``, from /proc/locks (0 if unknown)."""
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            for line in fh:
                parts = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
                if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == device:
                    return int(parts[4]) if parts[4].isdigit() else 0
    except OSError:
        pass
    return 0
