"""The plain path (formats/pdf/plain.py) lays out an invisible signature
without pyHanko. Its referee is pyHanko's own layout of the same signature:
both outputs are read by qpdf, an independent parser, and every object must
be the same, apart from what differs by design between any two signings
(the second /ID, /ModDate, the offsets in /ByteRange and the cross-reference
data). qpdf --check must find the output sound. Documents the plain path does
not take must go to pyHanko, never half-way."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import zlib
from dataclasses import replace
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from signkit.formats.pdf import plain
from signkit.formats.pdf import prepare as P
from signkit.formats.pdf.options import PdfDocOptions
from support.cmscheck import self_signed
from support.handmade_pdf import build
from support.infra import FIXTURES

RESERVED = 8192
NOW = datetime(2026, 12, 6, 9, 30, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
WITH_TEXTS = PdfDocOptions(
    reason="Phê duyệt (bản chính)",
    location="Hà Nội",
    contact="van.thu@example.gov.vn \\ 024",
    name="Nguyễn Văn A",
    field="Chu ky 1",
)
OPTIONS = [PdfDocOptions(), WITH_TEXTS]
# Entries two signings of one document always write differently.
VARYING = {"/ID", "/ModDate", "/ByteRange", "/Prev", "/Size", "/Length"}


@pytest.fixture(scope="module")
def state() -> P.WorkerState:
    cert, _key = self_signed("plain path test")
    config = P.PdfBatchConfig(
        signer_der=cert,
        chain_der=(),
        digest_algorithm="sha256",
        scheme="pkcs1v15",
        tsa=None,
        bytes_reserved=RESERVED,
    )
    return P.WorkerState(config)


def pyhanko_layout(data: bytes, opts: PdfDocOptions, st: P.WorkerState) -> bytes:
    """The general path's layout of the same signature (pyHanko's writer)."""
    item = P.PrepareItem(index=0, input="doc.pdf", temp="", options=opts, config=st.config)
    writer, access = P._open_writer(io.BytesIO(data), "doc.pdf", None)
    tbs, _ = P._signing_session(writer, access, item, st, NOW)
    out = io.BytesIO()
    tbs.digest_tbs_document(output=out)
    return out.getvalue()


def qpdf_objects(data: bytes, tmp: Path) -> dict[str, Any]:
    """Every object and the trailer as qpdf reads them (cross-reference
    streams left out: they are the layout, not the document)."""
    path = tmp / "q.pdf"
    path.write_bytes(data)
    proc = subprocess.run(
        ["qpdf", "--json=2", "--json-key=qpdf", str(path)], capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    found = {}
    for key, value in json.loads(proc.stdout)["qpdf"][1].items():
        body = value.get("value", value.get("stream", {}).get("dict"))
        if isinstance(body, dict) and body.get("/Type") == "/XRef":
            continue
        found[key] = _normal(body)
    return found


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "*" if k in VARYING else _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def qpdf_check(data: bytes, tmp: Path) -> None:
    path = tmp / "c.pdf"
    path.write_bytes(data)
    proc = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def assert_as_pyhanko(data: bytes, st: P.WorkerState, tmp: Path) -> None:
    """The plain path takes ``data`` and writes what pyHanko writes."""
    for opts in OPTIONS:
        layout = plain.sign_layout(data, opts, now=NOW, bytes_reserved=RESERVED)
        assert layout.output.startswith(data)
        ours = qpdf_objects(layout.output, tmp)
        theirs = qpdf_objects(pyhanko_layout(data, opts, st), tmp)
        assert ours == theirs
        qpdf_check(layout.output, tmp)
        _assert_byte_range(layout)


def _assert_byte_range(layout: plain.Layout) -> None:
    """/ByteRange covers everything but the reserved /Contents, which holds
    only the hex digits reserved."""
    out = layout.output
    found = re.search(rb"/ByteRange \[0 (\d+) (\d+) (\d+)\]", out)
    assert found is not None
    a, b, c = (int(v) for v in found.groups())
    assert (a, b) == (layout.reserved_start, layout.reserved_end)
    assert b + c == len(out)
    assert out[a:b] == b"<" + b"0" * RESERVED + b">"


# --- documents made by hand, each with one thing other writers do ---------


PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595.276 841.89] /Contents 4 0 R >>"
CONTENT = b"<< /Length 34 >>\nstream\nBT /F1 12 Tf 72 700 Td (Hi) Tj ET\nendstream"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"


def simple(**changes: bytes) -> dict[int, bytes]:
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>", 2: PAGES, 3: PAGE, 4: CONTENT}
    for key, value in changes.items():
        objects[int(key[1:])] = value
    return objects


def _vendor() -> str:
    return f"pyHanko {metadata.version('pyhanko')}"


HAND_MADE = {
    "table": build(simple()),
    "old header, catalog without /Version": build(simple(), header=b"%PDF-1.3"),
    "old header, newer /Version declared": build(
        simple(o1=b"<< /Type /Catalog /Pages 2 0 R /Version /1.7 >>"), header=b"%PDF-1.4"
    ),
    "old header, older /Version declared": build(
        simple(o1=b"<< /Type /Catalog /Pages 2 0 R /Version /1.5 >>"), header=b"%PDF-1.4"
    ),
    "info in UTF-16 and escapes": build(
        simple(
            o5=b"<< /Producer <FEFF004C0069006200720065004F006600660069006300650020"
            b"00740069 1EBF006E0067> "
            b"/Title (a \\(b\\) c\\\\ \\101\\n) /Author <FEFF004E00671EAF0063> >>"
        ),
        trailer=b"/Root 1 0 R /Info 5 0 R",
    ),
    "info naming pyHanko already": build(
        simple(o5=b"<< /Producer (" + _vendor().encode() + b") >>"),
        trailer=b"/Root 1 0 R /Info 5 0 R",
    ),
    "nested page tree, indirect kids": build(
        {
            1: b"<< /Type /Catalog /Pages 2 0 R >>",
            2: b"<< /Type /Pages /Kids 6 0 R /Count 1 >>",
            6: b"[ 7 0 R ]",
            7: b"<< /Type /Pages /Parent 2 0 R /Kids [3 0 R] /Count 1 >>",
            3: b"<< /Type /Page /Parent 7 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            4: CONTENT,
        }
    ),
    "page with a link annotation": build(
        simple(
            o3=b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Annots [5 0 R] >>",
            o5=b"<< /Type /Annot /Subtype /Link /Rect [10 10 50 20] "
            b"/A << /S /URI /URI (https://example.org/a\\)b) >> >>",
        )
    ),
    "comments, escaped names and tricky strings": build(
        simple(
            o1=b"<< /Type /Catalog % the catalog\n/Pages 2 0 R /Lang (vi-VN) "
            b"/PageLabels << /Nums [0 << /S /D /P (Trang >> \\) ) >>] >> "
            b"/A#20B /x#2Fy /ViewerPreferences << /DisplayDocTitle true /Direction /L2R >> >>"
        )
    ),
    "no end of line after %%EOF": build(simple(), end=b""),
    "CR LF line ends": build(simple(), eol=b"\r\n"),
    "trailer with an /ID and an extra entry": build(
        simple(), trailer=b"/Root 1 0 R /ID [<0011AABB> <0011AABB>] /DocChecksum /ABCDEF"
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_documents_get_what_pyhanko_writes(
    name: str, state: P.WorkerState, tmp_path: Path
) -> None:
    assert_as_pyhanko(HAND_MADE[name], state, tmp_path)


# --- documents from other writers ------------------------------------------

SOURCES = sorted([*(FIXTURES / "samples").glob("*.pdf"), *(FIXTURES / "nd30").glob("*.pdf")])
REWRITES = {
    "as made": None,
    "object streams (qpdf)": ["qpdf", "--object-streams=generate"],
    "tables only (qpdf)": ["qpdf", "--object-streams=disable"],
    "linearized (qpdf)": ["qpdf", "--linearize"],
    "QDF (qpdf)": ["qpdf", "--qdf"],
    "uncompressed object streams (qpdf)": [
        "qpdf",
        "--object-streams=generate",
        "--compress-streams=n",
    ],
    "cairo (pdftocairo)": ["pdftocairo", "-pdf"],
}


def rewritten(source: Path, how: list[str] | None, tmp: Path) -> bytes:
    if how is None:
        return source.read_bytes()
    target = tmp / f"rewritten-{source.name}"
    proc = subprocess.run([*how, str(source), str(target)], capture_output=True, check=False)
    assert proc.returncode in (0, 3), proc.stderr.decode()  # 3: qpdf's warnings
    return target.read_bytes()


@pytest.mark.parametrize("how", sorted(REWRITES))
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_documents_of_other_writers_get_what_pyhanko_writes(
    source: Path, how: str, state: P.WorkerState, tmp_path: Path
) -> None:
    if REWRITES[how] is not None and shutil.which(REWRITES[how][0]) is None:
        pytest.fail(f"{REWRITES[how][0]} is not installed (the test set-up installs it)")
    assert_as_pyhanko(rewritten(source, REWRITES[how], tmp_path), state, tmp_path)


def test_an_update_of_an_older_revision_keeps_the_trailer_entries_of_older_ones(
    state: P.WorkerState, tmp_path: Path
) -> None:
    """A later trailer without /Info: /Info is read from the earlier one (as pyHanko does)."""
    first = build(simple(o5=b"<< /Title (one) >>"), trailer=b"/Root 1 0 R /Info 5 0 R")
    at = len(first)
    prev = int(re.findall(rb"startxref\s+(\d+)", first)[-1])
    page = b"3 0 obj\n" + PAGE.replace(b"/MediaBox", b"/Rotate 0 /MediaBox") + b"\nendobj\n"
    xref_at = at + len(page)
    second = (
        first
        + page
        + b"xref\n3 1\n%010d 00000 n\r\n" % at
        + b"trailer\n<< /Size 6 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (prev, xref_at)
    )
    assert_as_pyhanko(second, state, tmp_path)


# --- what the plain path leaves to pyHanko ----------------------------------


def _hybrid() -> bytes:
    data = build(simple())
    return data.replace(b"/Root 1 0 R", b"/Root 1 0 R /XRefStm 0")


def _stream_xref_with_predictor() -> bytes:
    """A cross-reference stream with PNG 'Up' rows, as Word and Acrobat write."""
    objects = simple()
    out = bytearray(b"%PDF-1.7\n")
    offsets = {}
    for num in sorted(objects):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objects[num] + b"\nendobj\n"
    xref_num = max(objects) + 1
    offsets[xref_num] = len(out)
    rows = [bytes([0, 0, 0, 0xFF])] + [
        bytes([1]) + offsets[n].to_bytes(2, "big") + b"\x00" for n in range(1, xref_num + 1)
    ]
    filtered, previous = b"", bytes(4)
    for row in rows:
        filtered += b"\x02" + bytes((r - p) & 0xFF for r, p in zip(row, previous, strict=True))
        previous = row
    packed = zlib.compress(filtered)
    out += (
        b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 2 1] /Root 1 0 R "
        b"/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 4 >> /Length %d >>\n"
        b"stream\n" % (xref_num, xref_num + 1, len(packed))
    )
    out += packed + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % offsets[xref_num]
    return bytes(out)


def test_a_cross_reference_stream_with_a_png_predictor(
    state: P.WorkerState, tmp_path: Path
) -> None:
    assert_as_pyhanko(_stream_xref_with_predictor(), state, tmp_path)


def _misplaced() -> bytes:
    """The catalog's cross-reference entry one byte off."""
    data = build(simple())
    at = data.index(b"1 0 obj")
    return data.replace(b"%010d 00000 n" % at, b"%010d 00000 n" % (at + 1))


LEFT_TO_PYHANKO = {
    "a form (already signed)": (
        build(simple(o1=b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] >> >>")),
        "/AcroForm",
    ),
    "XMP metadata": (
        build(simple(o1=b"<< /Type /Catalog /Pages 2 0 R /Metadata 4 0 R >>")),
        "/Metadata",
    ),
    "extensions": (
        build(simple(o1=b"<< /Type /Catalog /Pages 2 0 R /Extensions << >> >>")),
        "/Extensions",
    ),
    "an indirect /Annots": (
        build(
            simple(
                o3=PAGE.replace(b">>", b"/Annots 5 0 R >>"),
                o5=b"[ ]",
            )
        ),
        "/Annots",
    ),
    "encrypted": (build(simple(), trailer=b"/Root 1 0 R /Encrypt 5 0 R"), "encrypted"),
    "data after %%EOF": (build(simple(), end=b"\n<html>junk</html>\n"), "%%EOF"),
    "a hybrid cross-reference": (_hybrid(), "hybrid"),
    "PDF 2.0": (build(simple(), header=b"%PDF-2.0"), "2.0"),
    "an offset that misses its object": (_misplaced(), "no object where"),
    "a page of generation 1": (
        build(simple(o2=PAGES.replace(b"3 0 R", b"3 1 R")), gens={3: 1}),
        "generation",
    ),
    "a header after junk": (b"junk\n" + build(simple()), "header"),
    "an object beyond /Size": (
        build(simple()).replace(b"<< /Size 5 ", b"<< /Size 4 "),
        "beyond",
    ),
    "no startxref": (build(simple()).replace(b"startxref", b"startxrfe"), "startxref"),
}


@pytest.mark.parametrize("name", sorted(LEFT_TO_PYHANKO))
def test_what_the_plain_path_does_not_take_it_leaves_whole(name: str) -> None:
    data, reason = LEFT_TO_PYHANKO[name]
    with pytest.raises(plain.NotPlain, match=re.escape(reason)):
        plain.sign_layout(data, PdfDocOptions(), now=NOW, bytes_reserved=RESERVED)


def test_options_beyond_an_invisible_signature_go_to_pyhanko() -> None:
    def takes(opts: PdfDocOptions, **changes: Any) -> bool:
        signer = {"password": None, "scheme": "pkcs1v15", "digest_algorithm": "sha256"}
        return plain.eligible(opts, **{**signer, **changes})

    base = PdfDocOptions()
    assert takes(base)
    assert takes(WITH_TEXTS)
    assert takes(base, scheme="pss", digest_algorithm="sha512")
    assert not takes(base, password="secret")
    assert not takes(base, scheme="ecdsa")  # pyHanko declares ISO 32002 for EC keys
    assert not takes(base, digest_algorithm="sha3_256")  # and ISO 32001 for SHA-3
    assert not takes(replace(base, rect="10,10,60,20"))
    assert not takes(replace(base, certify=True))
    assert not takes(replace(base, then=(base,)))
    assert not takes(replace(base, field="Parent.Child"))
    assert not takes(replace(base, field="Chữ ký"))


def test_worker_prepare_takes_the_plain_path_and_pyhanko_for_the_rest(
    state: P.WorkerState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's prepared digest is that of the bytes /ByteRange covers,
    on either path; a document with a form goes to pyHanko."""
    taken: list[str] = []
    real = plain.sign_layout

    def spy(data: bytes, *args: Any, **kwargs: Any) -> plain.Layout:
        try:
            layout = real(data, *args, **kwargs)
        except plain.NotPlain:
            taken.append("pyhanko")
            raise
        taken.append("plain")
        return layout

    monkeypatch.setattr(plain, "sign_layout", spy)
    monkeypatch.setattr(P, "_STATE", state)
    documents = {
        "plain.pdf": build(simple()),
        "form.pdf": build(
            simple(o1=b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] >> >>")
        ),
    }
    for index, (name, data) in enumerate(documents.items()):
        source = tmp_path / name
        source.write_bytes(data)
        item = P.PrepareItem(
            index=index,
            input=str(source),
            temp=str(tmp_path / f"out-{name}"),
            options=PdfDocOptions(),
            config=state.config,
        )
        prepared = P.worker_prepare(item)
        written = (tmp_path / f"out-{name}").read_bytes()
        assert written.startswith(data)
        covered = written[: prepared.reserved_start] + written[prepared.reserved_end :]
        assert hashlib.sha256(covered).digest() == prepared.document_digest
        assert prepared.signed_length == len(written)
        qpdf_check(written, tmp_path)
    assert taken == ["plain", "pyhanko"]


def test_png_row_filters_are_undone() -> None:
    rows = [bytes([10, 20, 30]), bytes([11, 25, 3]), bytes([200, 1, 255])]
    encoded = bytearray()
    previous = bytes(3)
    for kind, row in zip((1, 3, 4), rows, strict=True):
        out = bytearray()
        for i, value in enumerate(row):
            a = row[i - 1] if i else 0
            b = previous[i]
            c = previous[i - 1] if i else 0
            if kind == 1:
                pred = a
            elif kind == 3:
                pred = (a + b) >> 1
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((value - pred) & 0xFF)
        encoded += bytes([kind]) + out
        previous = row
    assert plain._unpredict(bytes(encoded), 3) == b"".join(rows)


def test_strings_and_names_are_read_as_written() -> None:
    value, _ = plain.parse(
        b"<< /A#20B (x \\(y\\) \\101\\\n z) /C <4142 4> /D [1 -2.5 .5 3 0 R] >>", 0
    )
    assert value == {"A B": b"x (y) A z", "C": b"AB@", "D": [1, -2.5, 0.5, plain.Ref(3, 0)]}
    assert value.raw["A B"] == (b"/A#20B", b"(x \\(y\\) \\101\\\n z)")
