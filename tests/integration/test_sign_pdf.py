"""`signkit sign pdf` end to end: real SoftHSM, live PKI, referees on every output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.events import wait_for
from support.fonts import DEJAVU, LIBERATION, TIMES, font_root
from support.infra import FIXTURES, TSA_URL, SoftHsm, batch_of, pki_certificate
from support.p11shim import Shim, sign_log
from support.pdfcheck import (
    assert_signed_ok,
    changed_pixels,
    openssl_document_timestamp,
    pdfsig,
)
from support.runner import cron_env

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]


def copy_samples(
    dst: Path, names: tuple[str, ...] = ("decision.pdf", "attachment.pdf", "two-pages.pdf")
) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        shutil.copy(SAMPLES / name, dst / name)
        out.append(dst / name)
    return out


def test_directory_batch_signs_every_file_once(sk, tmp_path: Path, trust: Path) -> None:  # type: ignore[no-untyped-def]
    inputs = copy_samples(tmp_path / "in")
    report = tmp_path / "report.json"
    proc = sk(str(tmp_path / "in"), *KEY, "--trust", str(trust), "--json", "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads(report.read_text())
    assert data["schema_version"] == 1 and data["totals"]["signed"] == 3
    assert data["signer"]["revocation"] == "good" and data["signer"]["chain_anchor"] == "configured"
    for src in inputs:
        out = src.with_name(src.stem + "_signed.pdf")
        assert_signed_ok(out)
        doc = next(d for d in data["documents"] if d["input"] == str(src))
        assert doc["status"] == "signed" and doc["output"] == str(out)
        assert (
            doc["sha256_after"] and doc["sha256_before"] and doc["signing_time"].endswith("+07:00")
        )
    # no temp files, originals untouched
    assert not list((tmp_path / "in").glob(".signkit-tmp-*"))
    assert (tmp_path / "in" / "decision.pdf").read_bytes() == (
        SAMPLES / "decision.pdf"
    ).read_bytes()
    # re-running signs nothing twice; the outputs are not picked up as inputs
    again = sk(str(tmp_path / "in"), *KEY, "--json")
    assert again.returncode == 0
    totals = json.loads(again.stdout)["totals"]
    assert totals["skipped"] == 3 and totals["signed"] == 0 and totals["total"] == 3
    # the audit log holds a chain of intent and result records, no PIN
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert (
        sum(1 for r in records if r["type"] == "document-result" and r["status"] == "signed") == 3
    )
    assert "739148" not in "".join(lines)


def test_resign_and_force(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy_samples(tmp_path, ("decision.pdf",))
    out = tmp_path / "decision_signed.pdf"
    assert sk(str(src), *KEY).returncode == 0
    first = out.read_bytes()
    again = sk(str(src), *KEY, "--resign", "--json")
    assert json.loads(again.stdout)["totals"]["signed"] == 1 and out.read_bytes() != first
    # someone else's file at the output path is never overwritten without --force
    out.write_bytes(b"not ours")
    proc = sk(str(src), *KEY)
    assert proc.returncode == 1 and "output exists (use --force" in proc.stderr
    assert out.read_bytes() == b"not ours"
    assert sk(str(src), *KEY, "--force").returncode == 0
    assert_signed_ok(out)


@pytest.mark.parametrize("level", ["B-T", "B-LT", "B-LTA"])
def test_levels(sk, tmp_path: Path, trust: Path, level: str) -> None:  # type: ignore[no-untyped-def]
    from asn1crypto import cms
    from pyhanko.pdf_utils.reader import PdfFileReader

    (src,) = copy_samples(tmp_path / "in", ("decision.pdf",))
    out = tmp_path / "out.pdf"
    proc = sk(
        str(src),
        *KEY,
        "-o",
        str(out),
        "--level",
        level,
        "--tsa",
        TSA_URL,
        "--trust",
        str(trust),
        "--revocation",
        "hard",
    )
    assert proc.returncode == 0, proc.stderr
    statuses = assert_signed_ok(out, offline_dss=level != "B-T")
    # the B-LTA document time-stamp, which pdfsig cannot validate, checked by openssl
    assert pdfsig(out).count("Signature #") == (2 if level == "B-LTA" else 1)
    if level == "B-LTA":
        doc_ts = openssl_document_timestamp(out, tmp_path)
        assert "Verification: OK" in doc_ts.stdout, doc_ts.stdout + doc_ts.stderr
        # the control: one byte changed under it, and openssl refuses the time-stamp
        changed = bytearray(out.read_bytes())
        changed[changed.index(b"%", 1) + 1] ^= 0x01
        (tmp_path / "changed.pdf").write_bytes(bytes(changed))
        bad = openssl_document_timestamp(tmp_path / "changed.pdf", tmp_path)
        assert "Verification: OK" not in bad.stdout and bad.returncode != 0
    assert statuses[0].timestamp_validity is not None and statuses[0].timestamp_validity.valid
    with out.open("rb") as fh:
        reader = PdfFileReader(fh)
        sig = reader.embedded_regular_signatures[0]
        token = sig.signer_info["unsigned_attrs"][0]["values"][0]
        # the time-stamp token, checked by openssl against the signature value
        (tmp_path / "sigvalue.bin").write_bytes(sig.signer_info["signature"].native)
        (tmp_path / "token.der").write_bytes(token.dump())
        (tmp_path / "root.pem").write_text(_pem(pki_certificate("root-ca")))
        (tmp_path / "interm.pem").write_text(_pem(pki_certificate("interm-ca")))
        ts = subprocess.run(
            [
                "openssl",
                "ts",
                "-verify",
                "-data",
                str(tmp_path / "sigvalue.bin"),
                "-in",
                str(tmp_path / "token.der"),
                "-token_in",
                "-CAfile",
                str(tmp_path / "root.pem"),
                "-untrusted",
                str(tmp_path / "interm.pem"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "Verification: OK" in ts.stdout, ts.stdout + ts.stderr
        assert isinstance(token, cms.ContentInfo)
        dss = reader.root.get("/DSS")
        dss = dss.get_object() if dss is not None else None
        if level == "B-T":
            assert dss is None
        else:
            assert len(dss["/Certs"]) >= 3 and len(dss["/OCSPs"]) >= 2 and len(dss["/CRLs"]) >= 1
        doc_ts = [s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
        assert len(doc_ts) == (1 if level == "B-LTA" else 0)
    if level == "B-LTA":
        from asn1crypto import x509
        from pyhanko.sign.validation import validate_pdf_timestamp
        from pyhanko.sign.validation.dss import DocumentSecurityStore

        with out.open("rb") as fh:
            reader = PdfFileReader(fh)
            vc = DocumentSecurityStore.read_dss(reader).as_validation_context(
                {
                    "trust_roots": [x509.Certificate.load(pki_certificate("root-ca"))],
                    "allow_fetching": False,
                }
            )
            status = validate_pdf_timestamp(reader.embedded_signatures[-1], vc)
            assert status.valid and status.intact and status.trusted


def _pem(der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def test_signing_a_signed_pdf_keeps_earlier_signatures(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy_samples(tmp_path, ("decision.pdf",))
    first = tmp_path / "first.pdf"
    second = tmp_path / "second.pdf"
    assert sk(str(src), *KEY, "-o", str(first)).returncode == 0
    proc = sk(
        str(first),
        "--token-label",
        "signkit-test-a",
        "--key-label",
        "signer-ec256",
        "-o",
        str(second),
    )
    assert proc.returncode == 0, proc.stderr
    assert second.read_bytes().startswith(first.read_bytes())  # incremental update
    assert_signed_ok(second, signatures=2)


@pytest.mark.parametrize("corner", ["bottom-left", "top-right"])
def test_visible_vietnamese_signature_in_its_box(sk, tmp_path: Path, corner: str) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.reader import PdfFileReader

    (src,) = copy_samples(tmp_path, ("decision.pdf",))
    out = tmp_path / "vis.pdf"
    proc = sk(
        str(src),
        "--token-label",
        "signkit-demo",
        "-o",
        str(out),
        "--rect",
        "20,30,80,25",
        "--corner",
        corner,
        "--reason",
        "Phê duyệt",
        "--location",
        "Nam Định",
        "--text",
        "Ký bởi: {signer}\n{org}\n{time}",
    )
    assert proc.returncode == 0, proc.stderr
    # the suite's font root holds Liberation Serif only (tests/support/fonts.py)
    assert "Times New Roman not found; visible signatures use Liberation Serif" in proc.stderr
    assert_signed_ok(out)
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout
    assert "Ký bởi: Nguyễn Văn An" in text and "Ủy ban nhân dân tỉnh Nam Định" in text
    assert "+07:00" in text
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True).stdout
    assert fonts.count("yes yes yes") >= 3  # embedded, subset, ToUnicode: body + appearance
    mm = 72 / 25.4
    with out.open("rb") as fh:
        reader = PdfFileReader(fh)
        page = reader.root["/Pages"]["/Kids"][0]
        widget = next(
            a.get_object() for a in page["/Annots"] if a.get_object().get("/FT") == "/Sig"
        )
        x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    exp_x = 20 * mm if corner == "bottom-left" else 595 - 20 * mm - 80 * mm
    exp_y = 30 * mm if corner == "bottom-left" else 842 - 30 * mm - 25 * mm
    assert abs(x1 - exp_x) <= 1 and abs(y1 - exp_y) <= 1
    assert abs((x2 - x1) - 80 * mm) <= 1 and abs((y2 - y1) - 25 * mm) <= 1
    # the rendered page: ink inside the box, none spilling out of it
    # compared with the unsigned page, so the document's own text does not count
    for pdf, stem in ((src, "before"), (out, "after")):
        subprocess.run(
            ["pdftoppm", "-r", "72", "-gray", str(pdf), str(tmp_path / stem)], check=True
        )
    inside, outside = changed_pixels(
        tmp_path / "before-1.pgm", tmp_path / "after-1.pgm", (x1, y1, x2, y2), 842
    )
    assert inside > 200, inside
    assert outside == 0, outside


def test_times_new_roman_is_used_when_installed(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Times New Roman "installed" in a font root of this test's own (the file at
    its path is DejaVu Serif, so pdffonts can tell which file was embedded)."""
    root = font_root(tmp_path / "fonts", {TIMES: DEJAVU, LIBERATION: LIBERATION})
    (src,) = copy_samples(tmp_path, ("attachment.pdf",))
    out = tmp_path / "tnr.pdf"
    proc = sk(
        str(src),
        *KEY,
        "-o",
        str(out),
        "--rect",
        "20,30,80,25",
        "--text",
        "Ký bởi: {signer}",
        env={"SIGNKIT_FONT_ROOT": str(root)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Times New Roman not found" not in proc.stderr
    assert_signed_ok(out)
    fonts = subprocess.run(["pdffonts", str(out)], capture_output=True, text=True).stdout
    assert any("DejaVuSerif" in line and " yes yes yes " in line for line in fonts.splitlines())
    assert (
        "Ký bởi: signkit Test Signer RSA-2048"
        in subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout
    )


def test_manifest_rows_override_options(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_samples(tmp_path)
    manifest = tmp_path / "batch.csv"
    manifest.write_text(
        "input,output,reason,page,rect\ndecision.pdf,out/d.pdf,Phê duyệt,1,10,10,60,20\n".replace(
            "10,10,60,20", '"10,10,60,20"'
        )
        + "attachment.pdf,out/a.pdf,Sao y,,\n",
        encoding="utf-8",
    )
    proc = sk("--manifest", str(manifest), *KEY, "--json")
    assert proc.returncode == 0, proc.stderr
    from pyhanko.pdf_utils.reader import PdfFileReader

    for name, reason, visible in (("d.pdf", "Phê duyệt", True), ("a.pdf", "Sao y", False)):
        path = tmp_path / "out" / name
        assert_signed_ok(path)
        with path.open("rb") as fh:
            sig = PdfFileReader(fh).embedded_regular_signatures[0]
            assert sig.sig_object["/Reason"] == reason
            rect = (
                [float(v) for v in sig.sig_field["/Kids"][0]["/Rect"]]
                if "/Kids" in sig.sig_field
                else [float(v) for v in sig.sig_field["/Rect"]]
            )
            assert (rect[2] > rect[0]) == visible
    bad = tmp_path / "bad.csv"
    bad.write_text("input,colour\ndecision.pdf,red\n")
    proc = sk("--manifest", str(bad), *KEY)
    assert proc.returncode == 2 and "unknown column(s) colour" in proc.stderr


def test_dry_run_writes_nothing(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_samples(tmp_path / "in")
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    proc = sk(str(tmp_path / "in"), *KEY, "--dry-run", "--json")
    assert proc.returncode == 0
    plan = json.loads(proc.stdout)
    assert plan["dry_run"] and plan["totals"]["planned"] == 3
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before


def test_in_place_keeps_mode(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy_samples(tmp_path, ("attachment.pdf",))
    src.chmod(0o640)
    proc = sk(str(src), *KEY, "--in-place")
    assert proc.returncode == 0, proc.stderr
    assert (src.stat().st_mode & 0o777) == 0o640
    assert_signed_ok(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attachment.pdf",
        "audit.jsonl",
        "audit.jsonl.anchor",  # the run's last seal, copied outside the log
        "root.der",
        "state",  # XDG_STATE_HOME: the audit seal key, made on first use
    ]


def test_bad_inputs_fail_alone_and_write_nothing(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_samples(tmp_path / "in", ("decision.pdf",))
    (tmp_path / "in" / "truncated.pdf").write_bytes((SAMPLES / "decision.pdf").read_bytes()[:4000])
    (tmp_path / "in" / "letter.pdf").write_text("Dear clerk, this is not a PDF.")
    encrypted = tmp_path / "in" / "secret.pdf"
    subprocess.run(
        [
            "qpdf",
            "--encrypt",
            "user-pw",
            "owner-pw",
            "256",
            "--",
            str(SAMPLES / "attachment.pdf"),
            str(encrypted),
        ],
        check=True,
    )
    proc = sk(str(tmp_path / "in"), *KEY, "--json")
    assert proc.returncode == 1
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    assert docs["decision.pdf"]["status"] == "signed"
    assert "not a PDF" in docs["letter.pdf"]["error_message"]
    assert docs["truncated.pdf"]["status"] == "failed" and docs["truncated.pdf"]["error_code"] == 3
    assert "encrypted" in docs["secret.pdf"]["error_message"]
    assert "Traceback" not in proc.stderr
    names = sorted(p.name for p in (tmp_path / "in").iterdir())
    assert names == [
        "decision.pdf",
        "decision_signed.pdf",
        "letter.pdf",
        "secret.pdf",
        "truncated.pdf",
    ]
    # the password from a file opens the encrypted one
    pw = tmp_path / "pw"
    pw.write_text("user-pw\n")
    proc = sk(str(encrypted), *KEY, "--password-file", str(pw))
    assert proc.returncode == 0, proc.stderr
    signed = tmp_path / "in" / "secret_signed.pdf"
    check = subprocess.run(
        ["pdfsig", "-upw", "user-pw", str(signed)], capture_output=True, text=True
    )
    assert "Signature is Valid" in check.stdout
    assert (
        subprocess.run(
            ["qpdf", "--password=user-pw", "--check", str(signed)], capture_output=True
        ).returncode
        == 0
    )


def test_collisions_are_refused_before_signing(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_samples(tmp_path, ("decision.pdf", "attachment.pdf"))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"input": "decision.pdf", "output": "same.pdf"}\n'
        '{"input": "attachment.pdf", "output": "same.pdf"}\n'
    )
    proc = sk("--manifest", str(manifest), *KEY)
    assert proc.returncode == 3 and "would both be written" in proc.stderr
    assert not (tmp_path / "same.pdf").exists()
    proc = sk(
        str(tmp_path / "decision.pdf"),
        str(tmp_path / "attachment.pdf"),
        *KEY,
        "-o",
        str(tmp_path / "x.pdf"),
    )
    assert proc.returncode == 2 and "-o takes a single input" in proc.stderr


def test_unwritable_output_dir(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy_samples(tmp_path, ("decision.pdf",))
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    proc = sk(str(tmp_path / "decision.pdf"), *KEY, "--output-dir", str(blocker / "out"))
    assert proc.returncode == 3 and "cannot create the output directory" in proc.stderr
    assert proc.stderr.startswith("error: ")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("signer-expired", "expired on 2023-01-01"),
        ("signer-revoked", "revoked"),
        ("signer-notyet", "not valid before 2040-01-01"),
        ("signer-nousage", "allows neither digitalSignature nor nonRepudiation"),
    ],
)
def test_unusable_signer_is_refused_before_any_file(
    sk, tmp_path: Path, trust: Path, key: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    copy_samples(tmp_path / "in")
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    proc = sk(
        str(tmp_path / "in"),
        "--token-label",
        "signkit-test-c",
        "--key-label",
        key,
        "--trust",
        str(trust),
    )
    assert proc.returncode == 5, proc.stderr
    assert message in proc.stderr and "error: signer certificate" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before


def test_revocation_policy_without_answers(tmp_path: Path, trust: Path) -> None:
    """No OCSP/CRL reachable: hard refuses (exit 5), soft warns, off says so."""
    from signkit.errors import RevocationError
    from signkit.pki.anchors import TrustSpec
    from signkit.pki.chain import check_signer

    leaf, chain = pki_certificate("signer-rsa2048"), [pki_certificate("interm-ca")]
    with pytest.raises(RevocationError) as err:
        check_signer(leaf, chain, TrustSpec(anchors=(trust,), revocation="hard", offline=True))
    assert err.value.exit_code == 5 and "could not be established" in str(err.value)
    soft = check_signer(leaf, chain, TrustSpec(anchors=(trust,), revocation="soft", offline=True))
    assert soft.revocation == "unknown" and any("unknown" in w for w in soft.warnings)
    off = check_signer(leaf, chain, TrustSpec(anchors=(trust,), revocation="off"))
    assert off.revocation == "not-checked"


def test_kill_9_then_rerun_completes(  # type: ignore[no-untyped-def]
    sk, softhsm: SoftHsm, p11shim: Shim, tmp_path: Path
) -> None:
    """kill -9 at a known point: the test PKCS#11 module holds the 11th
    signature (it never returns), so ten documents are signed and at least
    three of them published (finishes go to the workers in groups of at most
    eight); then the whole run, workers included, is killed. The token's own
    count shows the rerun signs exactly the documents without an output."""
    src = batch_of(tmp_path / "in", 120)
    out = tmp_path / "out"
    held = tmp_path / "held"
    tokenlog = tmp_path / "token.log"
    env = {
        **cron_env(softhsm, tmp_path / "state"),
        **p11shim.env(hold_at=11, hold_file=held, sign_log=tokenlog),
    }
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "signkit", "sign", "pdf", str(src), "--output-dir", str(out)),
            *("--module", str(p11shim.path), *KEY, "--revocation", "off"),
            *("--audit-log", str(tmp_path / "audit.jsonl")),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(held.exists, what="the 11th signature to reach the token")
        wait_for(lambda: len(list(out.glob("d*.pdf"))) >= 3, what="three outputs")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, workers included
        proc.wait()
    outputs = sorted(out.glob("d*.pdf"))
    assert 3 <= len(outputs) <= 10
    for path in outputs:  # whatever is visible is complete
        assert "Signature is Valid" in pdfsig(path)
    assert [kind for kind, pid, _n in sign_log(tokenlog) if pid == proc.pid] == ["sign"] * 10
    rerun = sk(
        *(str(src), "--output-dir", str(out), "--module", str(p11shim.path), *KEY),
        *("--json", "--revocation", "off"),
        env=p11shim.env(sign_log=tokenlog),
    )
    assert rerun.returncode == 0, rerun.stderr
    totals = json.loads(rerun.stdout)["totals"]
    assert totals["skipped"] == len(outputs) and totals["signed"] == 120 - len(outputs)
    assert len(sign_log(tokenlog)) == 10 + 120 - len(outputs)  # by the token's own count
    assert len(list(out.glob("d*.pdf"))) == 120
    assert not list(out.glob(".signkit-tmp-*"))  # the dead run's temp files are gone
