"""The hostile-PDF corpus (fixtures/make_hostile_pdfs.py): every file gets a verdict
or an input error, never exit 70 or a traceback, and the verdict its class calls for.

Regression: a shadow "hide" attack, a CMS with an invalid digest algorithm OID, a
signed PDF with ``startxref 0`` appended, corrupt Flate data, deep nesting and
dictionaries missing what a reader looks up ended in exit 70.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.infra import FIXTURES, PkiServices
from support.pdfcheck import pdfsig, qpdf_ok, render
from support.runner import Runner

sys.path.insert(0, str(FIXTURES))
from make_hostile_pdfs import CASES, write_corpus

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_hostile_pdf_gets_a_verdict_or_an_input_error(
    signkit: Runner, pki: PkiServices, trust: Path, corpus: dict[str, Path], name: str
) -> None:
    expect = CASES[name]
    path = corpus[name]
    proc = signkit(
        "verify", str(path), "--trust", str(trust), "--offline", "--revocation", "soft",
        "--json", "--no-audit",
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1, 3, 6), (proc.returncode, proc.stderr)
    doc = json.loads(proc.stdout)["documents"][0]
    assert "internal error" not in (doc["error_message"] or ""), doc
    if doc["verdict"] is None:
        assert "INPUT" in expect.verdicts, (name, doc["error_message"])
        assert doc["status"] == "failed" and doc["error_message"].startswith(str(path))
        return
    verdict = doc["verdict"]
    assert verdict["indication"] in expect.verdicts, (name, verdict)
    if expect.sub is not None:
        assert verdict["sub_indication"] == expect.sub, (name, verdict)


@pytest.mark.parametrize(
    "name",
    [
        "shadow-hide-contents.pdf",
        "shadow-hide-pages-count.pdf",
        "shadow-replace-xobject.pdf",
        "shadow-rewrite-object-stream.pdf",
        "signature-dictionary-changed.pdf",
    ],
)
def test_shadow_attacks_that_fool_a_maths_only_check_are_failed(
    signkit: Runner, pki: PkiServices, trust: Path, corpus: dict[str, Path], name: str
) -> None:
    """The referees agree the file is a well-formed PDF (qpdf) whose signature maths
    holds (pdfsig: the bytes it covers are intact); only what changed after
    signing betrays the attack, and signkit says FAILED for it."""
    path = corpus[name]
    assert qpdf_ok(path)
    assert "Signature is Valid" in pdfsig(path)
    proc = signkit("verify", str(path), "--trust", str(trust), "--json", "--no-audit")
    assert proc.returncode == 1, proc.stderr
    (s,) = json.loads(proc.stdout)["documents"][0]["verdict"]["signatures"]
    assert (s["indication"], s["sub_indication"]) == ("FAILED", "MODIFIED_AFTER_SIGNING")
    assert s["intact"] is True and s["signature_valid"] is True
    assert s["detail"].startswith("changed after signing: ")


def test_an_object_stream_rewritten_after_signing_changes_what_is_shown(
    signkit: Runner, pki: PkiServices, trust: Path, corpus: dict[str, Path], tmp_path: Path
) -> None:
    """The attack is real: poppler draws the page otherwise than as signed (the
    signed revision is the file up to the end of its byte range), and signkit
    names the rewritten stream."""
    path = corpus["shadow-rewrite-object-stream.pdf"]
    signed = _as_signed(path, tmp_path)
    assert render(signed, tmp_path / "as-signed").pixels != render(path, tmp_path / "now").pixels
    proc = signkit("verify", str(path), "--trust", str(trust), "--json", "--no-audit")
    (s,) = json.loads(proc.stdout)["documents"][0]["verdict"]["signatures"]
    assert s["detail"] == "changed after signing: object stream 16 of the signed revision changed"


def test_a_page_count_lowered_after_signing_hides_a_page(
    signkit: Runner, pki: PkiServices, trust: Path, corpus: dict[str, Path], tmp_path: Path
) -> None:
    """The attack is real: poppler counts two pages in the signed revision and one
    now (its /Kids still name both), and signkit says why it fails."""
    path = corpus["shadow-hide-pages-count.pdf"]
    signed = _as_signed(path, tmp_path)
    assert [_pages(signed), _pages(path)] == [2, 1]
    proc = signkit("verify", str(path), "--trust", str(trust), "--json", "--no-audit")
    (s,) = json.loads(proc.stdout)["documents"][0]["verdict"]["signatures"]
    assert s["detail"] == "changed after signing: the page tree changed (/Count)"
    # What changed is said to a person too, in either language.
    for lang, line in (
        ("en", "changed after signing: the page tree changed (/Count)"),
        ("vi", "đã bị thay đổi sau khi ký: cây trang bị thay đổi (/Count"),
    ):
        shown = signkit("--lang", lang, "verify", str(path), "--trust", str(trust), "--no-audit")
        assert shown.returncode == 1 and line in shown.stdout, shown.stdout


def _as_signed(path: Path, tmp_path: Path) -> Path:
    """The signed revision: the file up to the end of its (first) byte range."""
    data = path.read_bytes()
    start, length = (int(v) for v in re.findall(rb"/ByteRange\s*\[([^\]]*)\]", data)[0].split()[2:])
    signed = tmp_path / "as-signed.pdf"
    signed.write_bytes(data[: start + length])
    return signed


def _pages(pdf: Path) -> int:
    """The page count poppler reports."""
    out = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    match = re.search(r"^Pages:\s+(\d+)", out, re.M)
    assert match is not None, out
    return int(match.group(1))
