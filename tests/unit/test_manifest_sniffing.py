"""Manifests as spreadsheets save them: the separator is sniffed (``,`` ``;``
tab), UTF-8 with a byte order mark and UTF-16 are read, and errors name the
real line with a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from signkit.errors import InputError, UsageError
from signkit.jobs.inputs import read_manifest

COLUMNS = {"preset", "doc-number", "reason"}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    for name in ("qd-1.pdf", "qd-2.pdf"):
        (tmp_path / name).write_bytes(b"%PDF-1.7\n")
    return tmp_path


ROWS = [
    ["input", "output", "preset", "doc-number", "reason"],
    ["qd-1.pdf", "out/qd-1.pdf", "nd30-number-date", "1/QĐ-UBND", "Phê duyệt; ban hành"],
    ["qd-2.pdf", "out/qd-2.pdf", "nd30-number-date", "2/QĐ-UBND", "Ký số"],
]


def _csv(delimiter: str) -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if delimiter in value or "," in value else value

    return "\r\n".join(delimiter.join(cell(v) for v in row) for row in ROWS) + "\r\n"


@pytest.mark.parametrize(
    ("delimiter", "encoding", "bom"),
    [
        (",", "utf-8", b""),
        (";", "utf-8", b"\xef\xbb\xbf"),  # Excel "CSV UTF-8" under a vi-VN locale
        (";", "utf-8", b""),
        ("\t", "utf-16-le", b"\xff\xfe"),  # Excel "Unicode text"
        ("\t", "utf-16-be", b"\xfe\xff"),
    ],
)
def test_spreadsheet_exports_are_read(
    docs: Path, delimiter: str, encoding: str, bom: bytes
) -> None:
    path = docs / "batch.csv"
    path.write_bytes(bom + _csv(delimiter).encode(encoding))
    tasks = read_manifest(path, allowed_columns=COLUMNS)
    assert [t.input.name for t in tasks] == ["qd-1.pdf", "qd-2.pdf"]
    assert [t.row for t in tasks] == [2, 3]
    assert dict(tasks[0].options) == {
        "preset": "nd30-number-date",
        "doc-number": "1/QĐ-UBND",
        "reason": "Phê duyệt; ban hành",
    }


def test_unknown_column_names_the_header_line_and_the_nearest_name(docs: Path) -> None:
    """Regression: a ';' file was refused as 'line 2: unknown column(s)
    input;output;…' (the header is line 1, and nothing said why)."""
    path = docs / "batch.csv"
    path.write_text("input;output;doc_numbr\nqd-1.pdf;o.pdf;1/QĐ\n", encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        read_manifest(path, allowed_columns=COLUMNS | {"doc_number"})
    assert caught.value.message == "line 1: unknown column(s) doc_numbr"
    assert caught.value.hint is not None and caught.value.hint.startswith(
        "did you mean doc_number?"
    )


def test_rows_after_blank_lines_and_quoted_newlines_keep_their_line(docs: Path) -> None:
    path = docs / "batch.csv"
    path.write_text('input,reason\n\nqd-1.pdf,"two\nlines"\nqd-2.pdf,x,extra\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_manifest(path, allowed_columns=COLUMNS)
    assert caught.value.message == "line 5: 3 fields for 2 columns"
    assert caught.value.hint is not None and "commas" in caught.value.hint


def test_other_encodings_are_refused_with_a_hint(docs: Path) -> None:
    path = docs / "batch.csv"
    # Windows-1258 ("phê duyệt" with a combining dot below): not UTF-8
    path.write_bytes(b"input,reason\nqd-1.pdf,ph\xea duy\xeat\xf2\n")
    with pytest.raises(InputError) as caught:
        read_manifest(path, allowed_columns=COLUMNS)
    assert "neither UTF-8 nor UTF-16" in caught.value.message
    assert caught.value.hint is not None and "CSV UTF-8" in caught.value.hint
