"""Placement and appearance of visible PDF signatures; certification; keys of every kind."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.events import wait_for
from support.infra import FIXTURES, SoftHsm, batch_of
from support.p11shim import Shim, sign_log
from support.pdfcheck import (
    assert_signed_ok,
    changed_pixels,
    ink_box,
    new_words,
    pdfsig,
    poppler_word,
    render,
)
from support.runner import cron_env

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
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


MM = 72 / 25.4


def blue(pixel: tuple[int, int, int]) -> bool:
    """The ink of the sample's handwritten signature (signature.png is blue)."""
    r, _g, b = pixel
    return b > 120 and b - r > 60


def dark(pixel: tuple[int, int, int]) -> bool:
    return sum(pixel) < 300


def test_anchor_places_the_box_above_the_printed_name(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Where the name and the title are comes from poppler and from the rendered
    page, never from signkit's own text search."""
    src = SAMPLES / "decision.pdf"
    out = tmp_path / "leader.pdf"
    proc = sk(
        str(src),
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
    name = poppler_word(src, "Trần Thị Bình")
    title = poppler_word(src, "PHÓ CHỦ TỊCH")
    # expected: 50 x 18 mm, centred on the name, its bottom on the name's top
    centre = (name.x0 + name.x1) / 2
    expected = (centre - 25 * MM, name.y0 - 18 * MM, centre + 25 * MM, name.y0)
    assert expected[1] >= title.y1  # between the title line and the name line
    x1, y1, x2, y2 = widget_rect(out)
    widget = (x1, 842 - y2, x2, 842 - y1)  # display coordinates, as poppler's
    assert all(abs(a - b) <= 1 for a, b in zip(widget, expected, strict=True)), (widget, expected)
    # the rendered page: the blue signature is drawn inside that box, below the
    # title's ink and above the name's
    before = render(src, tmp_path / "before")
    ink = ink_box(render(out, tmp_path / "after"), blue, than=before, region=(300, 400, 595, 600))
    assert ink is not None
    assert expected[0] - 1 <= ink[0] and ink[2] <= expected[2] + 1, (ink, expected)
    assert expected[1] - 1 <= ink[1] and ink[3] <= expected[3] + 1, (ink, expected)
    name_ink = ink_box(before, dark, region=(name.x0, name.y0, name.x1, name.y1))
    title_ink = ink_box(before, dark, region=(title.x0, title.y0, title.x1, title.y1))
    assert name_ink is not None and title_ink is not None
    assert title_ink[3] <= ink[1] and ink[3] <= name_ink[1] + 0.5, (title_ink, ink, name_ink)


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
    # 40 x 10 mm right of the title (poppler's box), centred on it vertically
    word = poppler_word(SAMPLES / "two-pages.pdf", "QUYẾT ĐỊNH", page=1)
    centre = (word.y0 + word.y1) / 2
    expected = (word.x1, centre - 5 * MM, word.x1 + 40 * MM, centre + 5 * MM)
    x1, y1, x2, y2 = widget_rect(out, page=0)
    widget = (x1, 842 - y2, x2, 842 - y1)
    assert all(abs(a - b) <= 1 for a, b in zip(widget, expected, strict=True)), (widget, expected)
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


def red(pixel: tuple[int, int, int]) -> bool:
    """The ink of the sample seal (seal.png is red)."""
    r, g, b = pixel
    return r > 150 and g < 110 and b < 110


@pytest.mark.parametrize("layout", ["side", "stacked"])
def test_image_and_text_appearance(sk, tmp_path: Path, layout: str) -> None:  # type: ignore[no-untyped-def]
    """side: the image in the left half of the box, the text in the right half;
    stacked: the image in the top half, the text below. Positions from the
    rendered page (the seal's red ink) and from pdftotext (the words)."""
    src = SAMPLES / "attachment.pdf"
    out = tmp_path / "img.pdf"
    proc = sk(
        str(src),
        *RSA,
        "-o",
        str(out),
        "--rect",
        "100,20,80,30",
        "--image",
        str(SAMPLES / "seal.png"),
        "--layout",
        layout,
        "--text",
        "Ký số\n{signer}",
    )
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(out)
    box = (100 * MM, 842 - 50 * MM, 180 * MM, 842 - 20 * MM)  # display coordinates
    mid_x, mid_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    image = ink_box(render(out, tmp_path / "after"), red, than=render(src, tmp_path / "before"))
    words = new_words(src, out)
    assert image is not None
    assert {w.text for w in words} == {"Ký số", "signkit Test Signer RSA-2048"}, words
    text = (
        min(w.x0 for w in words),
        min(w.y0 for w in words),
        max(w.x1 for w in words),
        max(w.y1 for w in words),
    )
    for part in (image, text):  # both inside the box
        assert box[0] - 1 <= part[0] and part[2] <= box[2] + 1, (part, box)
        assert box[1] - 1 <= part[1] and part[3] <= box[3] + 1, (part, box)
    if layout == "side":
        assert image[2] <= mid_x + 1 <= text[0] + 2, (image, text, mid_x)
    else:
        assert image[3] <= mid_y + 1 <= text[1] + 2, (image, text, mid_y)
    # each takes a real share of its half, not a speck
    assert (image[2] - image[0]) * (image[3] - image[1]) > 0.15 * (box[2] - box[0]) * (
        box[3] - box[1]
    ) / 2, image


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


def test_ctrl_c_keeps_finished_files(softhsm: SoftHsm, p11shim: Shim, tmp_path: Path) -> None:
    """Ctrl-C in the middle of a batch, for certain: the test PKCS#11 module holds
    the 20th signature until the test has sent SIGINT, then lets it finish."""
    src = batch_of(tmp_path / "in", 150)
    out = tmp_path / "out"
    held, release = tmp_path / "held", tmp_path / "release"
    env = {
        **cron_env(softhsm, tmp_path / "state"),
        **p11shim.env(hold_at=20, hold_file=held, release_file=release),
    }
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "signkit", "sign", "pdf", str(src), "--output-dir", str(out)),
            *("--module", str(p11shim.path), *RSA, "--revocation", "off", "--json"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(held.exists, what="the 20th signature to reach the token")
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
    finally:
        release.touch()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    report = json.loads(stdout)
    signed = [d for d in report["documents"] if d["status"] == "signed"]
    outputs = sorted(out.glob("d*.pdf"))
    assert len(outputs) == len(signed) >= 20  # the held signature was kept too
    assert len(outputs) < 150
    assert report["totals"]["not-attempted"] == 150 - len(signed)
    assert not list(out.glob(".signkit-tmp-*"))
    for path in outputs[:3] + outputs[-3:]:
        assert "Signature is Valid" in pdfsig(path)


def test_two_runs_never_sign_one_document_twice(
    softhsm: SoftHsm, p11shim: Shim, tmp_path: Path
) -> None:
    """Two runs on one inbox, made to overlap: the test PKCS#11 module holds
    each run's first signature until both runs are at theirs (a barrier), so
    both are signing at once, each holding the documents it admitted. The
    token's own count of signatures and pdfsig on every output show each
    document signed exactly once."""
    docs = 60
    src = batch_of(tmp_path / "in", docs)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    tokenlog = tmp_path / "token.log"
    env = {
        **cron_env(softhsm, tmp_path / "state"),
        **p11shim.env(barrier_dir=barrier, barrier_parties=2, sign_log=tokenlog),
    }
    cmd = [
        *(sys.executable, "-m", "signkit", "sign", "pdf", str(src)),
        *("--output-dir", str(tmp_path / "out"), "--module", str(p11shim.path), *RSA),
        *("--revocation", "off", "--json", "--audit-log", str(tmp_path / "audit.jsonl")),
    ]

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    first = start()
    # the second run starts once the first is logged in and waits at the token
    wait_for(lambda: list(barrier.iterdir()), what="the first run at the token")
    second = start()
    reports = []
    for p in (first, second):
        out, err = p.communicate(timeout=300)
        report = json.loads(out)
        # 75 when it left documents the other run held (that run signed them)
        assert p.returncode == report["exit_code"] and p.returncode in (0, 75), err
        reports.append(report)
    for r in reports:
        for d in r["documents"]:
            if d["status"] == "not-attempted":
                assert d["reason"].startswith("locked by another signkit run (pid "), d
    # both runs passed the barrier with both present: they overlapped
    log = sign_log(tokenlog)
    pids = {first.pid, second.pid}
    assert {(pid, seen) for kind, pid, seen in log if kind == "barrier"} == {
        (pid, 2) for pid in pids
    }
    # the token signed exactly once per document, and both runs signed some
    per_run = {pid: sum(1 for kind, p, _ in log if kind == "sign" and p == pid) for pid in pids}
    assert sum(per_run.values()) == docs and min(per_run.values()) > 0, per_run
    statuses = [d["status"] for r in reports for d in r["documents"]]
    assert "failed" not in statuses, statuses
    signed = [d["input"] for r in reports for d in r["documents"] if d["status"] == "signed"]
    assert len(signed) == len(set(signed)) == docs  # each exactly once, between the two runs
    for r, pid in zip(reports, (first.pid, second.pid), strict=True):
        assert r["totals"]["signed"] == per_run[pid]
    outputs = sorted((tmp_path / "out").glob("d*.pdf"))
    assert len(outputs) == docs
    for path in outputs:
        report = pdfsig(path)
        assert report.count("Signature #") == 1 and "Signature is Valid" in report, path
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # one chain, no fork
    done = [
        r["input"] for r in records if r["type"] == "document-result" and r["status"] == "signed"
    ]
    assert sorted(done) == sorted(signed)


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
