"""Placement and appearance of visible PDF signatures; certification; keys of every kind."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.infra import REPO, SoftHsm, batch_of
from support.pdfcheck import assert_signed_ok, changed_pixels, pdfsig
from support.runner import cron_env

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = REPO / "fixtures" / "samples"
LEADER = ["--token-label", "signkit-test-b", "--key-label", "leader-vn"]
RSA = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]


def widget_rect(path: Path, page: int = 0) -> tuple[float, float, float, float]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    with path.open("rb") as fh:
        reader = PdfFileReader(fh)
        page_obj = reader.root["/Pages"]["/Kids"][page]
        for annot in page_obj.get("/Annots", []):
            annot = annot.get_object()
            if annot.get("/FT") == "/Sig" or "/Parent" in annot:
                x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
                return x1, y1, x2, y2
    raise AssertionError("no signature widget")


def word_box(pdf: Path, text: str) -> tuple[float, float, float, float]:
    from signkit.formats.pdf.anchor import find_on_page, page_words

    _w, height, words = page_words(str(pdf), 1, None)
    left, top, right, bottom = find_on_page(words, text)[-1]
    return left, height - bottom, right, height - top  # PDF coordinates


def test_anchor_places_the_box_above_the_printed_name(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "leader.pdf"
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *LEADER,
        "-o",
        str(out),
        "--anchor-text",
        "Trần Thị Bình",
        "--box-size",
        "50,18",
        "--image",
        str(SAMPLES / "signature.png"),
        "--text",
        "",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    x1, y1, x2, y2 = widget_rect(out)
    nx1, _ny1, nx2, ny2 = word_box(SAMPLES / "decision.pdf", "Trần Thị Bình")
    _tx1, ty1, _tx2, _ty2 = word_box(SAMPLES / "decision.pdf", "PHÓ CHỦ TỊCH")
    mm = 72 / 25.4
    assert abs((x2 - x1) - 50 * mm) <= 1 and abs((y2 - y1) - 18 * mm) <= 1
    assert abs((x1 + x2) / 2 - (nx1 + nx2) / 2) <= 1  # centred on the name
    assert abs(y1 - ny2) <= 1 and y2 <= ty1  # between the title line and the name line


def test_anchor_on_a_given_page_and_occurrence(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o.pdf"
    proc = sk(
        str(SAMPLES / "two-pages.pdf"),
        *RSA,
        "-o",
        str(out),
        "--anchor-text",
        "QUYẾT ĐỊNH",
        "--anchor-position",
        "right",
        "--box-size",
        "40,10",
        "--page",
        "1",
        "--anchor-occurrence",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    x1, _y1, _x2, _y2 = widget_rect(out, page=0)
    assert x1 > 100
    proc = sk(
        str(SAMPLES / "two-pages.pdf"),
        *RSA,
        "-o",
        str(tmp_path / "x.pdf"),
        "--anchor-text",
        "QUYẾT ĐỊNH",
        "--page",
        "1",
        "--anchor-occurrence",
        "9",
    )
    assert proc.returncode == 1 and "not 9" in proc.stderr


def test_anchor_absent_fails_that_document_only(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "x.pdf"
    proc = sk(
        str(SAMPLES / "decision.pdf"), *LEADER, "-o", str(out), "--anchor-text", "Lê Văn Không"
    )
    assert proc.returncode == 1
    assert "anchor text 'Lê Văn Không' not found on page 1" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".signkit-tmp-*"))


def test_decomposed_anchor_matches_precomposed_text(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Trần Thị Bình")
    proc = sk(
        str(SAMPLES / "decision.pdf"),
        *LEADER,
        "-o",
        str(tmp_path / "d.pdf"),
        "--anchor-text",
        decomposed,
    )
    assert proc.returncode == 0, proc.stderr


def test_legacy_vietnamese_encoding_is_named() -> None:
    from signkit.formats.pdf.anchor import looks_legacy

    # "Cộng hòa xã hội chủ nghĩa Việt Nam" / "Quyết định" typed in TCVN3, read as Unicode
    tcvn3 = [
        (0, 0, 1, 1, "Céng hßa x\u00b7 héi chñ nghÜa ViÖt Nam"),
        (0, 2, 1, 3, "Quy\u00b8t \u00aeÞnh"),
    ]
    unicode_vi = [(0, 0, 1, 1, "Cộng hòa xã hội chủ nghĩa Việt Nam")]
    assert looks_legacy(tcvn3) and not looks_legacy(unicode_vi) and not looks_legacy([])


@pytest.mark.parametrize("layout", ["side", "stacked"])
def test_image_and_text_appearance(sk, tmp_path: Path, layout: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "img.pdf"
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *RSA,
        "-o",
        str(out),
        "--rect",
        "100,20,80,30",
        "--image",
        str(SAMPLES / "seal.png"),
        "--layout",
        layout,
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    from pyhanko.pdf_utils.reader import PdfFileReader

    with out.open("rb") as fh:
        reader = PdfFileReader(fh)
        sig = reader.embedded_regular_signatures[0]
        ap = sig.sig_field["/AP"]["/N"] if "/AP" in sig.sig_field else None
        assert ap is not None
        resources = ap["/Resources"]
        # the image is drawn in a nested form XObject; look one level down
        names = list(resources.get("/XObject", {}).keys())
        assert names


def test_certify_with_docmdp_and_existing_field(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import fields

    with_field = tmp_path / "with-field.pdf"
    with (SAMPLES / "attachment.pdf").open("rb") as fh:
        w = IncrementalPdfFileWriter(fh)
        fields.append_signature_field(
            w, fields.SigFieldSpec("Approval", on_page=0, box=(300, 50, 500, 110))
        )
        with with_field.open("wb") as out:
            w.write(out)
    out = tmp_path / "certified.pdf"
    proc = sk(
        str(with_field), *RSA, "-o", str(out), "--field", "Approval", "--certify", "--docmdp", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    with out.open("rb") as fh:
        reader = PdfFileReader(fh)
        sig = reader.embedded_regular_signatures[0]
        assert sig.field_name == "Approval"
        assert sig.docmdp_level is not None and sig.docmdp_level.value == 1
    assert "Signature Type: ETSI.CAdES.detached" in pdfsig(out)


@pytest.mark.parametrize(
    ("key", "extra"),
    [
        (["--token-label", "signkit-test-a", "--key-label", "signer-ec256"], []),
        (["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"], ["--pss"]),
        (
            ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"],
            ["--digest", "sha512"],
        ),
        (["--token-label", "signkit-test-b", "--key-label", "signer-rsa3072"], []),
    ],
)
def test_key_kinds(sk, tmp_path: Path, key: list[str], extra: list[str]) -> None:  # type: ignore[no-untyped-def]
    """EC P-256, RSA-PSS, SHA-512 and an always-authenticate RSA-3072 key, several files."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        shutil.copy(SAMPLES / "attachment.pdf", src / f"a{i}.pdf")
    proc = sk(str(src), *key, *extra, "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    for out in sorted((tmp_path / "out").glob("*.pdf")):
        statuses = assert_signed_ok(out)
        assert statuses
        if "--pss" in extra:
            from pyhanko.pdf_utils.reader import PdfFileReader

            with out.open("rb") as fh:
                sig = PdfFileReader(fh).embedded_regular_signatures[0]
                assert sig.signer_info["signature_algorithm"]["algorithm"].native == "rsassa_pss"


def test_ctrl_c_keeps_finished_files(softhsm: SoftHsm, tmp_path: Path) -> None:
    src = batch_of(tmp_path / "in", 150)
    out = tmp_path / "out"
    env = cron_env(softhsm, tmp_path / "state")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signkit",
            "sign",
            "pdf",
            str(src),
            "--output-dir",
            str(out),
            *RSA,
            "--revocation",
            "off",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("d*.pdf"))) < 5:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    report = json.loads(stdout)
    signed = [d for d in report["documents"] if d["status"] == "signed"]
    outputs = sorted(out.glob("d*.pdf"))
    assert len(outputs) == len(signed) >= 5
    assert not list(out.glob(".signkit-tmp-*"))
    for path in outputs[:3] + outputs[-3:]:
        assert "Signature is Valid" in pdfsig(path)


def test_two_runs_never_sign_one_document_twice(softhsm: SoftHsm, tmp_path: Path) -> None:
    src = batch_of(tmp_path / "in", 60)
    env = cron_env(softhsm, tmp_path / "state")
    cmd = [
        sys.executable,
        "-m",
        "signkit",
        "sign",
        "pdf",
        str(src),
        "--output-dir",
        str(tmp_path / "out"),
        *RSA,
        "--revocation",
        "off",
        "--json",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
    ]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        # 75: it left documents the other run held (that run signed them)
        assert p.returncode in (0, 75), err
        reports.append(json.loads(out))
    for r in reports:
        for d in r["documents"]:
            if d["status"] == "not-attempted":
                assert d["reason"].startswith("locked by another signkit run (pid "), d
    signed = [d["input"] for r in reports for d in r["documents"] if d["status"] == "signed"]
    assert len(signed) == len(set(signed)) == 60  # each exactly once, between the two runs
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # one chain, no fork


def test_rect_honours_page_rotation(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """On a page shown rotated by 90°, --rect is measured on the page as seen."""
    rotated = tmp_path / "rotated.pdf"
    subprocess.run(
        ["qpdf", "--rotate=+90", str(SAMPLES / "attachment.pdf"), str(rotated)], check=True
    )
    out = tmp_path / "signed.pdf"
    proc = sk(str(rotated), *RSA, "-o", str(out), "--rect", "20,30,80,25", "--text", "signkit")
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    for pdf, stem in ((rotated, "before"), (out, "after")):
        subprocess.run(
            ["pdftoppm", "-r", "72", "-gray", str(pdf), str(tmp_path / stem)], check=True
        )
    mm = 72 / 25.4
    # as displayed, the page is 842 wide and 595 high; the box is 20 mm/30 mm
    # from the bottom-left corner of what the reader sees
    visible = (20 * mm, 30 * mm, 100 * mm, 55 * mm)
    inside, outside = changed_pixels(
        tmp_path / "before-1.pgm", tmp_path / "after-1.pgm", visible, 595
    )
    assert inside > 50 and outside == 0, (inside, outside)


@pytest.mark.parametrize("turn", [90, 270])
def test_text_reads_upright_on_rotated_pages(sk, tmp_path: Path, turn: int) -> None:  # type: ignore[no-untyped-def]
    """Regression: on a page shown rotated, the appearance text came out sideways
    (pyHanko draws in unrotated user space)."""
    rotated = tmp_path / "rotated.pdf"
    subprocess.run(
        ["qpdf", f"--rotate=+{turn}", str(SAMPLES / "attachment.pdf"), str(rotated)], check=True
    )
    out = tmp_path / "signed.pdf"
    proc = sk(str(rotated), *RSA, "-o", str(out), "--rect", "20,30,80,25", "--text", "signkit")
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    html = subprocess.run(
        ["pdftotext", "-bbox", "-f", "1", "-l", "1", str(out), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    words = [
        {k: float(v) for k, v in re.findall(r'(\w+)="([\d.]+)"', m.group(1))}
        for m in re.finditer(r"<word ([^>]*)>signkit</word>", html)
    ]
    assert len(words) == 1, html[-2000:]
    w = words[0]
    # as the reader sees it (poppler applies /Rotate): wide, not tall
    assert w["xMax"] - w["xMin"] > 2 * (w["yMax"] - w["yMin"]), w


def test_template_placeholders(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "t.pdf"
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        "--token-label",
        "signkit-demo",
        "-o",
        str(out),
        "--rect",
        "10,10,120,30",
        "--reason",
        "Sao y",
        "--location",
        "Nam Định",
        "--text",
        "{signer} | {serial} | {reason} | {location} | {time}",
    )
    assert proc.returncode == 0, proc.stderr
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout
    assert "Nguyễn Văn An | 100A | Sao y | Nam Định | " in text and "+07:00" in text
    bad = sk(
        str(SAMPLES / "attachment.pdf"),
        *RSA,
        "-o",
        str(tmp_path / "b.pdf"),
        "--rect",
        "10,10,60,20",
        "--text",
        "{nonsense}",
    )
    assert bad.returncode == 1 and "bad placeholder" in bad.stderr


def test_leaf_only_token_gets_its_chain_by_aia(sk, tmp_path: Path, trust: Path) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.reader import PdfFileReader

    from support.infra import pki_certificate

    out = tmp_path / "l.pdf"
    proc = sk(
        str(SAMPLES / "attachment.pdf"), *LEADER, "-o", str(out), "--trust", str(trust), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["signer"]["chain_anchor"] == "configured"
    assert_signed_ok(out)
    with out.open("rb") as fh:
        sig = PdfFileReader(fh).embedded_regular_signatures[0]
        certs = {c.chosen.dump() for c in sig.signed_data["certificates"]}
    assert pki_certificate("interm-ca") in certs  # fetched from the leaf's AIA URL


def test_fail_fast_stops_starting_documents(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = batch_of(tmp_path / "in", 40)
    (src / "a-broken.pdf").write_text("not a pdf")
    proc = sk(str(src), *RSA, "--output-dir", str(tmp_path / "out"), "--fail-fast", "--json")
    assert proc.returncode == 1
    totals = json.loads(proc.stdout)["totals"]
    assert totals["failed"] == 1 and totals["not-attempted"] > 0
    assert totals["signed"] + totals["not-attempted"] == 40


def test_anchor_without_page_searches_from_the_last_page(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Regression: the CLI's --page defaulted to 1, so a signer's name printed on
    the last page of a longer document was never found."""
    out = tmp_path / "o.pdf"
    proc = sk(
        str(SAMPLES / "two-pages.pdf"), *RSA, "-o", str(out), "--anchor-text", "Trần Thị Bình"
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    widget_rect(out, page=1)  # on the second page, where the name is
