"""A token pulled out in the middle of a batch, and a bug in signkit (exit 70).

SoftHSM cannot be unplugged: the test PKCS#11 module (support/p11shim.c)
forwards to SoftHSM and, after N signatures, answers the next signing call
with the return code a vendor module gives when its token is pulled out.
python-pkcs11 maps that code to its exception and signkit sees it exactly
as it would with a real token. Everything else is real: the `signkit`
command in a subprocess, SoftHSM, the audit log, and pdfsig as the referee.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.infra import FIXTURES, SoftHsm, batch_of, pki_certificate
from support.p11shim import (
    CKR_DEVICE_REMOVED,
    CKR_SESSION_HANDLE_INVALID,
    CKR_TOKEN_NOT_PRESENT,
    Shim,
    sign_log,
)
from support.pdfcheck import pdfsig, qpdf_ok
from support.runner import Runner, wrapped
from support.xmlcheck import assert_xmlsec_ok

pytestmark = [pytest.mark.softhsm]

KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
DOCS, GOOD = 12, 4


def records(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def sign_through_shim(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, shim: Shim, src: Path, tmp_path: Path, **faults
) -> subprocess.CompletedProcess[str]:
    return signkit(
        "sign",
        "pdf",
        str(src),
        "--output-dir",
        str(tmp_path / "out"),
        "--module",
        str(shim.path),
        *KEY,
        "--revocation",
        "off",
        "--json",
        "--report",
        str(tmp_path / "report.json"),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env={"SIGNKIT_PIN": softhsm.user_pin, **shim.env(**faults)},
    )


@pytest.mark.parametrize(
    ("ckr", "call", "message", "code", "error"),
    [
        # a token that is gone is a temporary condition (75): plug it in, re-run
        (CKR_DEVICE_REMOVED, "C_SignInit", "token removed while signing", 75, "TokenAbsentError"),
        (
            CKR_TOKEN_NOT_PRESENT,
            "C_SignInit",
            "token removed while signing",
            75,
            "TokenAbsentError",
        ),
        (
            CKR_SESSION_HANDLE_INVALID,
            "C_Sign",
            "CKR_SESSION_HANDLE_INVALID",
            4,
            "TokenOperationError",
        ),
    ],
)
def test_a_pulled_out_token_stops_the_batch_and_keeps_what_was_signed(
    signkit: Runner,
    softhsm: SoftHsm,
    p11shim: Shim,
    tmp_path: Path,
    ckr: int,
    call: str,
    message: str,
    code: int,
    error: str,
) -> None:
    src = batch_of(tmp_path / "in", DOCS)
    out = tmp_path / "out"
    tokenlog = tmp_path / "token.log"
    proc = sign_through_shim(
        signkit,
        softhsm,
        p11shim,
        src,
        tmp_path,
        fail_after=GOOD,
        fail_call=call,
        fail_ckr=ckr,
        sign_log=tokenlog,
    )
    # the CLI: the token's exit code, one error line naming the token, no traceback
    assert proc.returncode == code, proc.stderr
    assert "error: token 'signkit-test-a' (serial " in proc.stderr and message in proc.stderr
    assert "Traceback" not in proc.stderr
    if ckr != CKR_SESSION_HANDLE_INVALID:
        assert "hint: plug the token in and re-run" in proc.stderr
    summary = f"{GOOD} signed, 0 skipped, 1 failed, {DOCS - GOOD - 1} not attempted (of {DOCS})"
    assert summary in proc.stderr, proc.stderr
    # the report on stdout and in the file
    report = json.loads(proc.stdout)
    assert report == json.loads((tmp_path / "report.json").read_text())
    assert report["exit_code"] == code and report["run_error"]["code"] == code
    assert report["run_error"]["class"] == error
    assert report["totals"]["signed"] == GOOD and report["totals"]["failed"] == 1
    assert report["totals"]["not-attempted"] == DOCS - GOOD - 1
    failed = [d for d in report["documents"] if d["status"] == "failed"]
    assert failed[0]["error_class"] == error and message in failed[0]["error_message"]
    # the token made exactly GOOD signatures, and each one is a valid output
    assert [kind for kind, _pid, _n in sign_log(tokenlog)] == ["sign"] * GOOD
    outputs = sorted(out.glob("d*.pdf"))
    signed = sorted(Path(d["output"]) for d in report["documents"] if d["status"] == "signed")
    assert outputs == signed and len(outputs) == GOOD
    for path in outputs:
        assert pdfsig(path).count("Signature is Valid") == 1 and qpdf_ok(path)
    assert not list(out.glob(".signkit-tmp-*"))
    # the audit log: each output has its signed, published record; every document
    # the engine announced has a result; the others were never attempted
    recs = records(tmp_path / "audit.jsonl")
    results = {r["doc"]: r for r in recs if r["type"] == "document-result"}
    intents = {r["doc"] for r in recs if r["type"] == "document-intent"}
    published = {d for r in recs if r["type"] == "published" for d in r["docs"]}
    by_status: dict[str, set[int]] = {}
    for doc, r in results.items():
        by_status.setdefault(r["status"], set()).add(doc)
    assert len(by_status["signed"]) == GOOD and by_status["signed"] <= published
    assert {Path(results[d]["output"]) for d in by_status["signed"]} == set(outputs)
    assert len(by_status["failed"]) == 1
    (bad,) = by_status["failed"]
    assert results[bad]["error_class"] == error
    assert intents <= set(results) and set(by_status) <= {"signed", "failed", "not-attempted"}
    end = next(r for r in recs if r["type"] == "run-end")
    assert end["exit_code"] == code and end["totals"]["signed"] == GOOD
    check = signkit("audit", "verify", str(tmp_path / "audit.jsonl"), "--json")
    assert check.returncode == 0, check.stdout
    # the token is back: the same command finishes the batch, re-signing nothing
    again = sign_through_shim(signkit, softhsm, p11shim, src, tmp_path, sign_log=tokenlog)
    assert again.returncode == 0, again.stderr
    totals = json.loads(again.stdout)["totals"]
    assert totals["signed"] == DOCS - GOOD and totals["skipped"] == GOOD
    assert len(sign_log(tokenlog)) == DOCS
    assert len(list(out.glob("d*.pdf"))) == DOCS


def test_a_pulled_out_token_in_an_xml_batch(
    signkit: Runner, softhsm: SoftHsm, p11shim: Shim, pki: object, tmp_path: Path
) -> None:
    """The same for `sign xml`: e-invoices, CKR_DEVICE_REMOVED after four; xmlsec1
    checks what was kept."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(DOCS):
        shutil.copy(FIXTURES / "xml" / "einvoice.xml", src / f"hd{i:03d}.xml")
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    tokenlog = tmp_path / "token.log"
    proc = signkit(
        *("sign", "xml", str(src), "--output-dir", str(tmp_path / "out")),
        *("--module", str(p11shim.path), *KEY, "--trust", str(trust), "--json"),
        *("--audit-log", str(tmp_path / "audit.jsonl")),
        env={
            "SIGNKIT_PIN": softhsm.user_pin,
            **p11shim.env(
                fail_after=GOOD,
                fail_call="C_SignInit",
                fail_ckr=CKR_DEVICE_REMOVED,
                sign_log=tokenlog,
            ),
        },
    )
    assert proc.returncode == 75, proc.stderr  # the token is gone: temporary
    assert "token removed while signing" in proc.stderr and "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    assert report["totals"]["signed"] == GOOD and report["totals"]["failed"] == 1
    assert report["totals"]["not-attempted"] == DOCS - GOOD - 1
    assert len(sign_log(tokenlog)) == GOOD
    outputs = sorted((tmp_path / "out").glob("hd*.xml"))
    assert len(outputs) == GOOD and not list((tmp_path / "out").glob(".signkit-tmp-*"))
    for path in outputs:
        assert_xmlsec_ok(path, tmp_path)
    recs = records(tmp_path / "audit.jsonl")
    signed = {
        r["output"] for r in recs if r["type"] == "document-result" and r["status"] == "signed"
    }
    assert signed == {str(p) for p in outputs}


BUG = """
import {module} as target

def broken(*args, **kwargs):
    raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

target.{name} = broken
"""


def run_with_bug(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, where: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    module, name = where.rsplit(".", 1)
    program = wrapped(tmp_path, BUG.format(module=module, name=name))
    src = batch_of(tmp_path / "in", 6)
    out = tmp_path / "out"
    proc = signkit(
        "sign",
        "pdf",
        str(src),
        "--output-dir",
        str(out),
        *KEY,
        "--revocation",
        "off",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        *extra,
        env={"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin},
        program=program,
    )
    return proc, src, out


INTERNAL = "error: internal error (TypeError); run again with --debug for a traceback and report it"


@pytest.mark.parametrize(
    "where",
    [
        "signkit.jobs.signing.plan_outputs",  # before the token is opened
        "signkit.jobs.signing._signer_identity",  # logged in, signer checked, nothing written
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_exits_70_and_writes_nothing(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, where: str, debug: bool
) -> None:
    """A genuine bug (a TypeError raised inside signkit, injected into the real
    command by a wrapper): exit 70, the one-line message with the --debug hint,
    a traceback only with --debug, never the PIN, no output and no temp file."""
    proc, src, out = run_with_bug(
        signkit, softhsm, tmp_path, where, *(["--debug"] if debug else [])
    )
    assert proc.returncode == 70, proc.stderr
    assert INTERNAL in proc.stderr
    assert ("Traceback" in proc.stderr) == debug, proc.stderr
    assert softhsm.user_pin not in proc.stderr + proc.stdout
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert left == [], left
    assert sorted(p.name for p in src.iterdir()) == [f"d{i:03d}.pdf" for i in range(6)]


def test_an_internal_error_after_signing_leaves_no_temp_file(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    """The bug strikes at the first rename of a finished document: the temp files
    are complete then, and must still not be left behind; the audit log's run-end
    must say 70, as the process does."""
    proc, _src, out = run_with_bug(signkit, softhsm, tmp_path, "signkit.jobs.engine.publish")
    assert proc.returncode == 70, proc.stderr
    assert INTERNAL in proc.stderr and "Traceback" not in proc.stderr
    assert not list(out.glob("d*.pdf"))
    assert not list(out.glob(".signkit-tmp-*")), sorted(p.name for p in out.iterdir())
    end = next(r for r in records(tmp_path / "audit.jsonl") if r["type"] == "run-end")
    assert end["exit_code"] == 70, end


DOC_BUG = """
import {module} as target

_original = target.{name}


def broken(first, *args, **kwargs):
    if "{doc}" in str(getattr(first, "input", first)):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")
    return _original(first, *args, **kwargs)


target.{name} = broken
"""


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ("sign", "signkit.formats.pdf.prepare.worker_prepare"),
        ("verify", "signkit.verify.pdf.verify_pdf"),
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_a_document_that_meets_a_bug_makes_the_run_exit_70(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, command: str, where: str, debug: bool
) -> None:
    """The run goes on (the other documents are signed or judged) and the report
    names the document, but the run exits 70, not 1: a bug is for a report to
    the developers, not a bad document for a clerk (it used to exit 1, and
    `verify` called the document unreadable). With --debug the worker prints
    the bug's traceback, which the one-line record cannot carry (it used to be
    lost: the exception crosses to the main process without its frames). The
    screen says what to do: run again with --debug and report it."""
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    src = batch_of(tmp_path / "in", 3)
    out = tmp_path / "out"
    sign = ["sign", "pdf", str(src), "--output-dir", str(out), *KEY, "--revocation", "off"]
    module, name = where.rsplit(".", 1)
    program = wrapped(tmp_path, DOC_BUG.format(module=module, name=name, doc="d001.pdf"))
    if command == "verify":
        assert signkit(*sign, "--no-audit", env=env).returncode == 0
        args = ["verify", str(out), "--offline", "--revocation", "off"]
    else:
        args = sign
    report = tmp_path / "report.json"
    # The Vietnamese screen with --debug, the English one without.
    lang = ["--lang", "vi"] if debug else []
    extra = ["--debug"] if debug else []
    proc = signkit(
        *lang, *args, "--no-audit", "--report", str(report), *extra, env=env, program=program
    )
    assert proc.returncode == 70, proc.stderr
    screen = proc.stdout + proc.stderr
    if debug:
        hint = "gợi ý: lỗi của signkit: hãy chạy lại với --debug để xem chi tiết (traceback)"
        label, summary = "LỖI NỘI BỘ  d001.pdf", "0 KHÔNG HỢP LỆ, gặp lỗi nội bộ của signkit 1 ("
    else:
        hint = "hint: a bug in signkit: run again with --debug for a traceback and report it"
        label, summary = "INTERNAL ERROR  d001.pdf", "0 failed, 1 met a bug in signkit (of 3)"
    assert hint in screen, screen
    if command == "verify":
        # It used to be labelled and counted as an unreadable document.
        assert label in proc.stdout, proc.stdout
        assert summary in proc.stdout, proc.stdout
        if not debug:
            html = tmp_path / "report.html"
            args += ["--report-format", "html", "--report", str(html)]
            assert signkit(*args, "--no-audit", env=env, program=program).returncode == 70
            page = html.read_text()
            assert page.count(">INTERNAL ERROR<") == 1, page
            assert "UNREADABLE" not in page and "No signature" not in page, page
    assert ("Traceback" in proc.stderr) == debug, proc.stderr
    if debug:
        assert f"internal error on {src if command == 'sign' else out}" in proc.stderr
        assert 'in broken\n    raise TypeError("unsupported operand' in proc.stderr, proc.stderr
    assert softhsm.user_pin not in proc.stderr
    data = json.loads(report.read_text())
    assert data["exit_code"] == 70
    by_name = {Path(d["input"]).name: d for d in data["documents"]}
    assert by_name["d001.pdf"]["error_code"] == 70, by_name["d001.pdf"]
    message = by_name["d001.pdf"]["error_message"]
    assert message.startswith("internal error (") and "TypeError" in message, message
    others = [by_name[n]["status"] for n in ("d000.pdf", "d002.pdf")]
    assert others == ["signed"] * 2 if command == "sign" else ["verified"] * 2, others
    if command == "sign" and not debug:
        # One document: its one error line names it (the exception's text does not).
        alone = signkit(
            "sign", "pdf", str(src / "d001.pdf"), "-o", str(tmp_path / "alone.pdf"), *KEY,
            "--revocation", "off", "--no-audit", env=env, program=program,
        )  # fmt: skip
        assert alone.returncode == 70, alone.stderr
        assert f"error: {src / 'd001.pdf'}: internal error (TypeError: " in alone.stderr
        assert hint in alone.stderr, alone.stderr
