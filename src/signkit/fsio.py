"""File handling every part of signkit shares: complete writes, atomic
replacement through unpredictable temp files, and inputs that must be regular
files.

A short ``os.write`` (a full disk, a quota) is an error here, never silently
a shorter file; temp files are created with ``O_EXCL|O_NOFOLLOW`` under a
random name, so a planted symlink or a guessed name cannot redirect a write.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from signkit.errors import InputError

Writer = Callable[[int, bytes | memoryview], int]
"""``os.write``'s shape: the seam through which tests inject full disks."""

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_all(fd: int, data: bytes | bytearray | memoryview, *, write: Writer = os.write) -> None:
    """Write every byte of ``data`` or raise OSError (ENOSPC when nothing more fits)."""
    view = memoryview(data)
    while view:
        written = write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


def temp_name(final: Path, prefix: str = ".") -> Path:
    """An unpredictable name next to ``final`` (same directory, so a rename is atomic)."""
    return final.with_name(f"{prefix}{final.name}.{secrets.token_hex(16)}.tmp")


def create_exclusive(path: Path, mode: int = 0o666, *, readable: bool = False) -> int:
    """Open a new file for writing (and reading, if ``readable``); fails if
    anything (a symlink included) is there."""
    flags = (_CREATE & ~os.O_WRONLY) | os.O_RDWR if readable else _CREATE
    return os.open(path, flags, mode)


def fsync_file(path: Path | str) -> None:
    """Make a file's data durable (opened read-only, never through a symlink)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data``: all of it or, on any error, nothing.

    The temp file lives next to ``path`` under a random name; it is fsynced
    before the rename and the directory after it. ``mode`` is masked by the
    umask, as for any file the user creates.
    """
    atomic_write_stream(path, lambda fh: write_all(fh.fileno(), data), mode=mode).close()


def atomic_write_stream(
    path: Path, produce: Callable[[BinaryIO], object], *, mode: int = 0o666
) -> BinaryIO:
    """``atomic_write`` for data written piece by piece: ``produce`` writes into
    the temp file. Returns that file, open for reading at its start once it
    has replaced ``path`` (what was written can be read back without opening
    ``path`` again); the caller closes it."""
    tmp = temp_name(path)
    fh = os.fdopen(create_exclusive(tmp, mode, readable=True), "w+b")
    try:
        try:
            produce(fh)
            fh.flush()
            os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            fsync_directory(path.parent)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    return fh


def open_regular(path: Path | str) -> int:
    """A read-only descriptor on ``path``, which must be a regular file.

    Opened without blocking, so a FIFO or a device put in a document's place
    is refused instead of hanging the run; the descriptor is blocking again
    once returned. Raises InputError naming the file and the reason.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(f"cannot open ({exc.strerror})", subject=str(path)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError("not a regular file", subject=str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_within(fh: BinaryIO, limit: int) -> bytes:
    """The rest of ``fh``, or its first ``limit + 1`` bytes when it is longer:
    more than ``limit`` bytes tells the caller the file is over it.

    The buffer is sized by the file's length, not by ``limit``: ``read(limit +
    1)`` reserves the whole limit (64 MiB for XML) for every small document,
    an mmap, page faults and an mremap each time. A file that grows while it
    is read is still read up to the limit."""
    try:
        size = os.fstat(fh.fileno()).st_size
    except (OSError, ValueError, io.UnsupportedOperation):
        return fh.read(limit + 1)
    data = fh.read(min(size, limit) + 1)
    if size < len(data) <= limit:
        data += fh.read(limit + 1 - len(data))
    return data


_FICLONE = 0x40049409
"""ioctl(2) request that shares a file's blocks with another (btrfs, XFS, ...)."""

_COPY_CHUNK = 1 << 20


class _Writeback:
    """Has the disk write a large file's data while it is still being copied
    (an fdatasync on a thread, asked for again as more is written), so the
    fsync that makes it durable later finds little left and the disk's
    writing overlaps the copying, hashing and checking."""

    def __init__(self, fd: int) -> None:
        import threading

        self._fd = os.dup(fd)  # ours to close, whatever the caller does with fd
        self._wanted = threading.Event()
        self._last = False
        threading.Thread(target=self._run, name="signkit-writeback", daemon=True).start()

    def poke(self, *, last: bool = False) -> None:
        self._last = self._last or last
        self._wanted.set()

    def _run(self) -> None:
        try:
            while True:
                self._wanted.wait()
                self._wanted.clear()
                last = self._last
                with contextlib.suppress(OSError):  # the real fsync comes later
                    os.fdatasync(self._fd)
                if last:
                    return
        finally:
            os.close(self._fd)


_WRITEBACK_STEP = 64 << 20


def copy_hashing(src: int, dst: int, hasher: Any, *, write: Writer = os.write) -> int:
    """Copy the whole file ``src`` into the empty file ``dst`` (descriptors),
    feeding every byte copied to ``hasher``; returns the size.

    Where the file system shares blocks (a reflink), the copy costs nothing
    and the source is read once to hash it; elsewhere each chunk is read
    once, hashed and written from the same buffer, so the file is read only
    once either way and memory stays at one chunk.
    """
    import fcntl

    # from the start, whatever a buffered reader on ``src`` has read ahead
    os.lseek(src, 0, os.SEEK_SET)
    try:
        fcntl.ioctl(dst, _FICLONE, src)
    except OSError:
        pass  # no reflinks here (ext4, tmpfs, another file system): copy
    else:
        os.lseek(dst, 0, os.SEEK_END)
        return _hash_fd(src, hasher)
    buffer = bytearray(_COPY_CHUNK)
    view = memoryview(buffer)
    total = 0
    writeback: _Writeback | None = None
    try:
        with os.fdopen(src, "rb", buffering=0, closefd=False) as reader:
            while n := reader.readinto(buffer):
                chunk = view[:n]
                hasher.update(chunk)
                write_all(dst, chunk, write=write)
                total += n
                if total % _WRITEBACK_STEP < n:
                    writeback = writeback or _Writeback(dst)
                    writeback.poke()
    finally:
        if writeback is not None:
            writeback.poke(last=True)
    return total


def _hash_fd(fd: int, hasher: Any) -> int:
    buffer = bytearray(_COPY_CHUNK)
    view = memoryview(buffer)
    total = 0
    with os.fdopen(fd, "rb", buffering=0, closefd=False) as reader:
        while n := reader.readinto(buffer):
            hasher.update(view[:n])
            total += n
    return total
