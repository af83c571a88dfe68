"""Copying a large input into the temp file while hashing it: one read of the
input, the copy and its hash of every byte, whatever was read before."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from signkit.fsio import copy_hashing


def _data(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]  # no period of a chunk


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, (1 << 20) + 12345, 3 << 20])
def test_the_copy_and_its_hash_are_the_whole_file(tmp_path: Path, size: int) -> None:
    data = _data(size)
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(data)
    hasher = hashlib.sha256()
    with src.open("rb") as reader:
        # a header check has read ahead through the buffered reader
        reader.read(5)
        reader.seek(0)
        fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            assert copy_hashing(reader.fileno(), fd, hasher) == size
        finally:
            os.close(fd)
    assert dst.read_bytes() == data
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_full_disk_is_an_error_not_a_shorter_copy(tmp_path: Path) -> None:
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(_data(3 << 20))
    written = 0

    def disk(fd: int, data: bytes | memoryview) -> int:
        nonlocal written
        if written >= 1 << 20:
            return 0
        n = os.write(fd, data)
        written += n
        return n

    fd_in = os.open(src, os.O_RDONLY)
    fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        with pytest.raises(OSError) as err:
            copy_hashing(fd_in, fd, hashlib.sha256(), write=disk)
        assert err.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
        os.close(fd_in)


def test_a_large_copy_starts_the_disk_writing_early_and_leaks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past a step of data, a thread fdatasyncs the copy while it goes on; it
    closes its own descriptor when done, and the copy is whole."""
    import threading

    from signkit import fsio

    synced: list[int] = []
    real = os.fdatasync

    def spy(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(fsio, "_WRITEBACK_STEP", 1 << 20)
    monkeypatch.setattr(os, "fdatasync", spy)
    data = _data((5 << 20) + 17)
    src, dst = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(data)
    before = len(os.listdir("/proc/self/fd"))
    fd_in = os.open(src, os.O_RDONLY)
    fd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    try:
        copy_hashing(fd_in, fd, hashlib.sha256())
    finally:
        os.close(fd)
        os.close(fd_in)
    for thread in threading.enumerate():
        if thread.name == "signkit-writeback":
            thread.join(timeout=10)
    assert synced, "no early writeback"
    assert len(os.listdir("/proc/self/fd")) == before
    assert dst.read_bytes() == data
