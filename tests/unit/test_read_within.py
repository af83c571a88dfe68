"""Reading a document up to a size limit: all of a small one, one byte over
the limit of a large one, and never a buffer of the whole limit for a few
kilobytes (every XML document read used to reserve 64 MiB first)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from signkit.formats.xml.parse import MAX_BYTES
from signkit.fsio import read_within
from signkit.verify.policy import VerifyPolicy
from signkit.verify.xml import verify_xml
from support.infra import FIXTURES
from support.memory import traced_peak


def test_a_small_file_is_read_whole_without_a_buffer_of_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "small.xml"
    path.write_bytes(b"<a>" + b"x" * 5000 + b"</a>")
    got: list[bytes] = []

    def read() -> None:
        with path.open("rb") as fh:
            got.append(read_within(fh, MAX_BYTES))

    assert traced_peak(read) < 1 << 20
    assert got == [path.read_bytes()]


def test_a_file_over_the_limit_gives_one_byte_more(tmp_path: Path) -> None:
    path = tmp_path / "large.bin"
    path.write_bytes(b"y" * 1000)
    with path.open("rb") as fh:
        assert read_within(fh, 100) == b"y" * 101
    with path.open("rb") as fh:
        assert read_within(fh, 1000) == b"y" * 1000


def _write_and_close(fd: int, data: bytes) -> None:
    os.write(fd, data)
    os.close(fd)


def test_what_has_no_size_yet_is_read_up_to_the_limit() -> None:
    # A pipe reports no size, as a file that grows after its fstat: what is
    # read beyond the size first seen still counts against the limit.
    for written, limit, expected in ((b"z" * 10, 100, 10), (b"z" * 200, 100, 101)):
        r, w = os.pipe()
        writer = threading.Thread(target=_write_and_close, args=(w, written))
        writer.start()
        with os.fdopen(r, "rb") as fh:
            assert len(read_within(fh, limit)) == expected
        writer.join()


def test_verifying_a_small_xml_document_reserves_no_buffer_of_the_limit() -> None:
    fixture = sorted((FIXTURES / "xml" / "verify").glob("*.xml"))[0]
    policy = VerifyPolicy(offline=True, revocation="off")
    assert traced_peak(lambda: verify_xml(fixture, policy)) < MAX_BYTES // 4
