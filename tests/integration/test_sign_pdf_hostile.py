"""Damaged PDFs given to `sign pdf`: each is refused with its reason, as an
input error, and the batch goes on (real SoftHSM, real processes).

A fuzzing run found each class: every one ended the run with an internal
error (exit 70) before, or looped until the document's time budget, or
signed into a copy no other reader could open."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.handmade_pdf import build, page_objects, with_damaged_xref_stream
from support.infra import FIXTURES, TSA_URL, PkiServices, SoftHsm
from support.pdfcheck import pdfsig
from support.reports import refused_as_input_errors
from support.runner import Runner

pytestmark = [pytest.mark.softhsm]

KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
STD = page_objects()

# name -> (the file, what its error says)
READING = {
    # pyHanko's reader raising what a caller does not expect of it
    "root-is-a-number.pdf": (build({**STD, 1: b"42"}), "malformed PDF (AssertionError)"),
    "startxref-too-large.pdf": (build(STD, startxref=b"9" * 30), "malformed PDF (Python int"),
    "nested-too-deep.pdf": (
        build(page_objects(catalog=b" /Deep " + b"[" * 5000 + b"]" * 5000)),
        "malformed PDF (maximum recursion depth",
    ),
    "xref-stream-damaged.pdf": (with_damaged_xref_stream(STD), "while decompressing data"),
    # numbers past what Python converts (signkit's own reader of plain files)
    "size-of-5000-digits.pdf": (build(STD, size=b"1" * 5000), "malformed PDF (Exceeds the limit"),
    # a /Size whose new objects no reader could open
    "size-past-the-limit.pdf": (
        build(STD, size=b"2147483653"),
        "the trailer's /Size, 2147483653, is not an object count a PDF may have",
    ),
}
PLACING = {
    "count-is-a-name.pdf": (
        build({**STD, 2: b"<< /Type /Pages /Kids [3 0 R] /Count /One >>"}),
        "the page tree's /Count is not a number of pages",
    ),
    "mediabox-of-three.pdf": (
        build(page_objects(mediabox=b"[0 0 595]")),
        "page 1 has no valid /MediaBox",
    ),
    "mediabox-missing.pdf": (build(page_objects(mediabox=None)), "page 1 has no valid /MediaBox"),
    "mediabox-of-names.pdf": (
        build(page_objects(mediabox=b"[/a /b /c /d]")),
        "page 1 has no valid /MediaBox",
    ),
    "rotate-is-a-name.pdf": (
        build(page_objects(page=b" /Rotate /R90")),
        "page 1 is turned by /R90, not a multiple of 90 degrees",
    ),
    "rotate-45.pdf": (
        build(page_objects(page=b" /Rotate 45")),
        "page 1 is turned by 45, not a multiple of 90 degrees",
    ),
    "parent-loops.pdf": (
        build(page_objects(mediabox=None, pages=b" /Parent 2 0 R")),
        "the page tree above page 1 loops",
    ),
}


@pytest.mark.parametrize(
    ("cases", "extra"),
    [(READING, []), (PLACING, ["--rect", "20,20,60,20"])],
    ids=["reading", "placing-a-visible-signature"],
)
def test_a_damaged_pdf_is_an_input_error_and_the_batch_goes_on(
    signkit: Runner,
    softhsm: SoftHsm,
    tmp_path: Path,
    cases: dict[str, tuple[bytes, str]],
    extra: list[str],
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name, (data, _) in cases.items():
        (src / name).write_bytes(data)
    shutil.copy(FIXTURES / "samples" / "decision.pdf", src / "zz-good.pdf")
    (src / "zz-handmade-good.pdf").write_bytes(build(STD))
    report, audit = tmp_path / "report.json", tmp_path / "audit.jsonl"
    proc = signkit(
        "sign", "pdf", str(src), "--output-dir", str(out), *KEY, "--revocation", "off",
        "--report", str(report), "--audit-log", str(audit), "--doc-timeout", "30", *extra,
        env={"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    docs = refused_as_input_errors(report, src, cases)
    for name in cases:
        assert f"{src / name}: " in proc.stderr  # the one-line error names the file
        assert not (out / name).exists()
    for good in ("zz-good.pdf", "zz-handmade-good.pdf"):
        assert docs[good]["status"] == "signed", docs[good]
        assert "Signature is Valid" in pdfsig(out / good)
    assert sorted(p.name for p in out.iterdir()) == ["zz-good.pdf", "zz-handmade-good.pdf"]
    assert signkit("audit", "verify", str(audit)).returncode == 0


@pytest.mark.pki
def test_extend_refuses_a_damaged_pdf_as_an_input_error(
    signkit: Runner, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    """`extend` reads the same files with the same reader: the same classes
    ended it with an internal error."""
    src = tmp_path / "in"
    src.mkdir()
    for name, (data, _) in READING.items():
        (src / name).write_bytes(data)
    report = tmp_path / "report.json"
    proc = signkit(
        "extend", str(src), "--tsa", TSA_URL, "--trust", str(trust), "--no-audit",
        "--report", str(report),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    docs = {Path(d["input"]).name: d for d in json.loads(report.read_text())["documents"]}
    for name, (data, _) in READING.items():
        # A /Size past the limit is readable; it has no signature to extend.
        expected = ("skipped", None) if name == "size-past-the-limit.pdf" else ("failed", 3)
        assert (docs[name]["status"], docs[name]["error_code"]) == expected, docs[name]
        assert (src / name).read_bytes() == data
    assert sorted(p.name for p in src.iterdir()) == sorted(READING)
