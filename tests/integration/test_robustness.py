"""Faults, hostile inputs and scheduled jobs: no output without its record, no
leaked secret, bounded resources, machine-readable failures (real SoftHSM,
real processes; a fault seam only where the fault cannot be made for real)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.handmade_pdf import build, page_objects
from support.infra import FIXTURES, REPO, SoftHsm, batch_of
from support.pdfcheck import pdfsig
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
PDF_PASSWORD = "mật-khẩu-PDF-42"


def records(log: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in log.read_bytes().splitlines() if line.strip()]


def signed_hashes(log: Path) -> dict[str, str]:
    """output path -> sha256_after of every `signed` document-result in the log."""
    return {
        r["output"]: r["sha256_after"]
        for r in records(log)
        if r.get("type") == "document-result" and r.get("status") == "signed"
    }


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def audit_verify(signkit: Runner, log: Path) -> subprocess.CompletedProcess[str]:
    return signkit("audit", "verify", str(log), "--json")


def quiet_events():  # type: ignore[no-untyped-def]
    class Quiet:
        def document_done(self, result) -> None:  # type: ignore[no-untyped-def]
            pass

    return Quiet()


def job(softhsm: SoftHsm, src: Path, out: Path, **extra):  # type: ignore[no-untyped-def]
    from signkit.formats.pdf import PdfFormat
    from signkit.jobs.outputs import OutputSpec
    from signkit.jobs.signing import SignJobSpec
    from signkit.pki.anchors import TrustSpec
    from signkit.tokens.access import TokenSpec
    from signkit.tokens.model import KeySelector
    from signkit.tokens.pin import Pin, PinSourceKind, PinSpec

    return SignJobSpec(
        format=PdfFormat(),
        inputs=(str(src),),
        outputs=OutputSpec(output_dir=out),
        token=TokenSpec(
            module=softhsm.module,
            selector=KeySelector(token_label="signkit-test-a", key_label="signer-rsa2048"),
            pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(softhsm.user_pin)),
        ),
        trust=TrustSpec(revocation="off"),
        **extra,
    )


# ---------------------------------------------------------------- the audit log on a full disk


class FullDiskAfter:
    """os.write that takes ``budget`` bytes, then writes short, then fails with ``code``."""

    def __init__(self, budget: int, code: int) -> None:
        self.left = budget
        self.code = code

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.left <= 0:
            raise OSError(self.code, os.strerror(self.code))
        n = min(len(data), self.left)
        self.left -= n
        return os.write(fd, data[:n])


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EDQUOT])
def test_audit_write_failure_publishes_no_output_without_its_record(
    softhsm: SoftHsm, signkit: Runner, tmp_path: Path, code: int
) -> None:
    """Regression: a short os.write in the audit writer was ignored and the
    outputs renamed anyway (32 outputs, 21 records on a 24 KiB disk)."""
    from signkit.errors import AuditWriteError
    from signkit.jobs.engine import EngineSpec
    from signkit.jobs.report import BatchReport
    from signkit.jobs.signing import sign_documents
    from signkit.tokens.guard import PinGuard

    src = batch_of(tmp_path / "in", 40)
    out = tmp_path / "out"
    log = tmp_path / "audit.jsonl"
    spec = job(
        softhsm,
        src,
        out,
        audit_path=log,
        audit_write=FullDiskAfter(24 * 1024, code),
        engine=EngineSpec(group_size=4, lookahead=8),
    )
    report = BatchReport(command="sign pdf")
    with pytest.raises(AuditWriteError) as err:
        sign_documents(
            spec,
            io=None,  # type: ignore[arg-type]
            guard=PinGuard(tmp_path / "guard"),
            warn=lambda _text: None,
            events=quiet_events(),
            report=report,
        )
    assert err.value.exit_code == 3 and "audit log not writable" in str(err.value)
    assert report.exit_code() == 3 and report.run_error is err.value
    published = sorted(out.glob("d*.pdf"))
    recorded = signed_hashes(log)
    assert 0 < len(published) < 40
    for path in published:  # every visible output has its durable record
        assert recorded.get(str(path)) == sha256(path), path
    assert not list(out.glob(".signkit-tmp-*"))
    statuses = {d.status.value for d in report.documents}
    assert statuses <= {"signed", "failed", "not-attempted"}
    unpublished = [d for d in report.documents if d.status.value == "failed"]
    assert unpublished and all("audit log not writable" in d.error_message for d in unpublished)
    assert all(not Path(d.output).exists() for d in unpublished)
    # The log was cut back to its last complete commit: intact, not "tampered".
    checked = audit_verify(signkit, log)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A real file system of ``size`` mounted on ``directory`` (root only, as in CI)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (CI runs as root)")
    directory.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=True
    )
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False)


def test_audit_log_on_a_full_tmpfs(signkit: Runner, tmp_path: Path) -> None:
    """The same on a real 24 KiB file system (root only, as in CI)."""
    disk = tmp_path / "disk"
    with tmpfs(disk, "24k"):
        src = batch_of(tmp_path / "in", 40)
        out = tmp_path / "out"
        log = disk / "audit.jsonl"
        proc = signkit(
            "sign",
            "pdf",
            str(src),
            "--output-dir",
            str(out),
            *KEY,
            "--revocation",
            "off",
            "--json",
            "--audit-log",
            str(log),
            env=pin_env(signkit),
        )
        assert proc.returncode == 3, proc.stderr
        assert "audit log not writable (No space left on device)" in proc.stderr
        assert "Traceback" not in proc.stderr
        data = json.loads(proc.stdout)
        assert data["status"] == "error" and data["run_error"]["class"] == "AuditWriteError"
        published = sorted(out.glob("d*.pdf"))
        recorded = signed_hashes(log)
        assert len(published) < 40
        for path in published:
            assert recorded.get(str(path)) == sha256(path), path
        assert not list(out.glob(".signkit-tmp-*"))
        checked = audit_verify(signkit, log)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("kind", ["pdf", "xml"])
def test_an_output_on_a_full_disk_is_named_by_its_document(
    signkit: Runner, tmp_path: Path, kind: str
) -> None:
    """Regression (found by fuzzing): a document whose signed copy did not fit
    was reported as '.signkit-tmp-...: cannot write the signed copy', naming a
    temp file already removed; the clerk could not tell which document it was."""
    out = tmp_path / "out"
    with tmpfs(out, "64k"):
        src = tmp_path / "in"
        src.mkdir()
        big = src / f"big.{kind}"
        if kind == "pdf":
            # an object of incompressible bytes makes a valid PDF of 200 KiB
            filler = b"<< /Length %d >>\nstream\n" % (200 << 10) + os.urandom(200 << 10)
            big.write_bytes(build({**page_objects(), 6: filler + b"\nendstream"}))
        else:
            big.write_text("<r>" + "<a>lớn</a>" * 30000 + "</r>", encoding="utf-8")
        proc = signkit(
            "sign", kind, str(big), "--output-dir", str(out), *KEY, "--revocation", "off",
            "--no-audit", env=pin_env(signkit),
        )  # fmt: skip
        assert proc.returncode == 1, proc.stderr  # the document failed, as any other
        assert "Traceback" not in proc.stderr and ".signkit-tmp" not in proc.stderr, proc.stderr
        assert f"{big}: cannot write the signed copy (No space left on device)" in proc.stderr
        assert list(out.iterdir()) == []


def pin_env(signkit: Runner) -> dict[str, str]:
    """A scheduled job's environment: the module and the PIN."""
    return {"SIGNKIT_MODULE": signkit.hsm.module, "SIGNKIT_PIN": signkit.hsm.user_pin}


# ---------------------------------------------------------------- secrets

SHIM = """#!/bin/sh
# Records what pdftotext and the signkit processes above it carry, then runs it.
dump() {{
    {{ printf '== %s\\n' "$1"; cat /proc/$1/cmdline; printf '\\n'
       cat /proc/$1/environ; printf '\\n'; }} >> "{dump}" 2>/dev/null
}}
dump $$
p=$PPID
while [ -n "$p" ] && [ "$p" != 1 ] && grep -q signkit /proc/$p/cmdline 2>/dev/null; do
    dump $p
    p=$(awk '/^PPid:/ {{print $2}}' /proc/$p/status)
done
exec {real} "$@"
"""


@pytest.mark.parametrize("password_from", ["env", "file"])
def test_secrets_never_reach_workers_children_or_argv(
    signkit: Runner, tmp_path: Path, password_from: str
) -> None:
    """Regression: SIGNKIT_PIN was in the workers' environment (they were forked
    before it was taken out) and in pdftotext's; the PDF password was in
    pdftotext's argv. Witness: a pdftotext on PATH that records its own and its
    signkit ancestors' /proc environ and cmdline."""
    shims = tmp_path / "bin"
    shims.mkdir()
    dump = tmp_path / "dump.bin"
    shim = shims / "pdftotext"
    shim.write_text(SHIM.format(dump=dump, real=shutil.which("pdftotext")))
    shim.chmod(0o755)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        subprocess.run(
            [
                "qpdf",
                "--encrypt",
                PDF_PASSWORD,
                "owner-" + PDF_PASSWORD,
                "256",
                "--",
                str(SAMPLES / "decision.pdf"),
                str(src / f"qd-{i}.pdf"),
            ],
            check=True,
        )
    env = {**pin_env(signkit), "PATH": f"{shims}:{os.environ['PATH']}"}
    args = []
    if password_from == "env":
        env["SIGNKIT_PDF_PASSWORD"] = PDF_PASSWORD
    else:
        secret = tmp_path / "pdf-password"
        secret.write_text(PDF_PASSWORD + "\n")
        secret.chmod(0o600)
        args = ["--password-file", str(secret)]
    proc = signkit(
        "sign",
        "pdf",
        str(src),
        "--output-dir",
        str(tmp_path / "out"),
        *KEY,
        *args,
        "--revocation",
        "off",
        "--anchor-text",
        "Trần Thị Bình",
        "--text",
        "Ký bởi {signer}",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    seen = dump.read_bytes()
    blocks = seen.count(b"== ")
    # pdftotext itself, the worker that ran it and the main process, per document
    assert blocks >= 9, seen[:2000]
    assert b"pdftotext" in seen and b"-m\x00signkit" in seen
    for secret_text in (signkit.hsm.user_pin, PDF_PASSWORD):
        assert secret_text.encode() not in seen, secret_text
    assert b"SIGNKIT_PIN=" not in seen.replace(b"SIGNKIT_PIN=\x00", b"")
    for out in (tmp_path / "out").glob("*.pdf"):
        assert "Signature is Valid" in pdfsig(out) or "password" in pdfsig(out).lower()


# ---------------------------------------------------------------- resume


def test_resume_signs_again_an_input_that_changed(signkit: Runner, tmp_path: Path) -> None:
    """Regression: a rerun skipped an input that changed after it was signed
    (exit 0, the output still holding the old document)."""
    src = tmp_path / "in"
    src.mkdir()
    doc = src / "qd.pdf"
    shutil.copy(SAMPLES / "decision.pdf", doc)
    common = [str(src), "--output-dir", str(tmp_path / "out"), *KEY, "--revocation", "off"]
    common += ["--audit-log", str(tmp_path / "audit.jsonl"), "--json"]
    first = signkit("sign", "pdf", *common, env=pin_env(signkit))
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out" / "qd.pdf"
    again = signkit("sign", "pdf", *common, env=pin_env(signkit))
    assert json.loads(again.stdout)["documents"][0]["status"] == "skipped"
    shutil.copy(SAMPLES / "two-pages.pdf", doc)  # the clerk replaced the draft
    third = signkit("sign", "pdf", *common, env=pin_env(signkit))
    assert third.returncode == 0, third.stderr
    row = json.loads(third.stdout)["documents"][0]
    assert row["status"] == "signed" and "input changed" in row["reason"]
    assert out.read_bytes().startswith(doc.read_bytes())
    assert "Signature is Valid" in pdfsig(out)


def test_resume_signs_again_a_changed_xml(signkit: Runner, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    doc = src / "hd.xml"
    shutil.copy(FIXTURES / "xml" / "einvoice.xml", doc)
    common = [str(src), "--output-dir", str(tmp_path / "out"), *KEY, "--revocation", "off"]
    common += ["--audit-log", str(tmp_path / "audit.jsonl"), "--json"]
    assert signkit("sign", "xml", *common, env=pin_env(signkit)).returncode == 0
    again = signkit("sign", "xml", *common, env=pin_env(signkit))
    assert json.loads(again.stdout)["documents"][0]["status"] == "skipped"
    doc.write_bytes(doc.read_bytes().replace(b"</", "<!-- sửa --></".encode(), 1))
    third = signkit("sign", "xml", *common, env=pin_env(signkit))
    assert third.returncode == 0, third.stderr
    row = json.loads(third.stdout)["documents"][0]
    assert row["status"] == "signed" and "input changed" in row["reason"]
    assert "<!-- sửa -->".encode() in (tmp_path / "out" / "hd.xml").read_bytes()


# ---------------------------------------------------------------- hostile inputs

XREF_BOMB = (
    b"%PDF-1.7\n1 0 obj<</Type/XRef/Size 999999999/W[100 100 100]/Length 0>>stream\n\n"
    b"endstream endobj\nstartxref\n9\n%%EOF\n"
)


@pytest.mark.parametrize("command", ["sign", "verify"])
def test_a_hostile_xref_is_bounded_and_the_batch_goes_on(
    signkit: Runner, tmp_path: Path, command: str
) -> None:
    """Regression: a 112-byte PDF declaring /Size 999999999 grew `sign` to 5.4 GB
    and `verify` without bound. Over its budget it fails as malformed, the
    worker is replaced and the other documents are done."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a-bomb.pdf").write_bytes(XREF_BOMB)
    shutil.copy(SAMPLES / "attachment.pdf", src / "b-good.pdf")
    shutil.copy(SAMPLES / "decision.pdf", src / "c-good.pdf")
    budget = ["--doc-memory", "256", "--doc-timeout", "10", "--jobs", "1"]
    audit = ["--audit-log", str(tmp_path / "audit.jsonl")]
    wrapper = tmp_path / "peak.py"
    wrapper.write_text(
        textwrap.dedent(
            """
            import resource, subprocess, sys
            proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr + f"\\nPEAK_KIB {peak}\\n")
            sys.exit(proc.returncode)
            """
        )
    )
    if command == "sign":
        args = ["sign", "pdf", str(src), "--output-dir", str(tmp_path / "out"), *KEY]
        args += ["--revocation", "off", *budget, *audit, "--json"]
    else:
        args = ["verify", str(src), *budget, *audit, "--json"]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(wrapper), sys.executable, "-m", "signkit", *args],
        capture_output=True,
        text=True,
        env=signkit.env(pin_env(signkit)),
        cwd=REPO,
        timeout=180,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr
    peak_kib = int(proc.stderr.rsplit("PEAK_KIB ", 1)[1])
    assert peak_kib < 700 * 1024, peak_kib  # the largest process stayed near its budget
    assert elapsed < 120
    docs = {Path(d["input"]).name: d for d in json.loads(proc.stdout)["documents"]}
    bomb = docs["a-bomb.pdf"]
    assert bomb["status"] == "failed" and bomb["error_code"] == 3, bomb
    if command == "sign":
        assert docs["b-good.pdf"]["status"] == "signed"
        assert docs["c-good.pdf"]["status"] == "signed"
        assert not (tmp_path / "out" / "a-bomb.pdf").exists()
    else:
        assert docs["b-good.pdf"]["status"] == "verified"
        assert docs["c-good.pdf"]["status"] == "verified"


def test_an_input_replaced_by_a_fifo_after_planning_fails_alone(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    """Regression: a FIFO put in a document's place after planning hung the
    batch for ever (a blocking open), and Ctrl-C did nothing."""
    from signkit.jobs.report import BatchReport
    from signkit.jobs.signing import plan, sign_documents
    from signkit.tokens.guard import PinGuard

    src = batch_of(tmp_path / "in", 3)
    spec = job(softhsm, src, tmp_path / "out", audit_path=tmp_path / "audit.jsonl")
    docs = plan(spec)
    victim = src / "d001.pdf"
    victim.unlink()
    os.mkfifo(victim)
    report = BatchReport(command="sign pdf")
    started = time.monotonic()
    sign_documents(
        spec,
        io=None,  # type: ignore[arg-type]
        guard=PinGuard(tmp_path / "guard"),
        warn=lambda _text: None,
        events=quiet_events(),
        report=report,
        docs=docs,
    )
    assert time.monotonic() - started < 60
    by_name = {Path(d.input).name: d for d in report.documents}
    assert by_name["d001.pdf"].status.value == "failed"
    assert "not a regular file" in (by_name["d001.pdf"].error_message or "")
    assert by_name["d000.pdf"].status.value == "signed"
    assert by_name["d002.pdf"].status.value == "signed"
    assert report.exit_code() == 1


# ---------------------------------------------------------------- stop signals

SLOW_TOKEN = textwrap.dedent(
    """
    import dataclasses, sys, time
    import signkit.jobs.signing as job
    original = job.sign_documents
    def slow(sign):
        def wrapped(data):
            time.sleep(0.3)
            return sign(data)
        return wrapped
    def patched(spec, **kw):
        return original(dataclasses.replace(spec, sign_hook=slow), **kw)
    job.sign_documents = patched
    from signkit.cli import main
    sys.argv = ["signkit", *sys.argv[1:]]
    main()
    """
)


def slow_batch(tmp_path: Path, count: int) -> tuple[list[str], Path]:
    """argv of `sign pdf … --json` on ``count`` documents in ``tmp_path/in``,
    the token slowed by SLOW_TOKEN so that a stop lands mid-batch; outputs go
    to ``tmp_path/out``, the audit log and the report beside them. Returns
    the argv and the audit log."""
    src = batch_of(tmp_path / "in", count)
    script = tmp_path / "slow.py"
    script.write_text(SLOW_TOKEN)
    log = tmp_path / "audit.jsonl"
    argv = [sys.executable, str(script), "sign", "pdf", str(src), "--output-dir"]
    argv += [str(tmp_path / "out"), *KEY, "--revocation", "off", "--audit-log", str(log)]
    return [*argv, "--report", str(tmp_path / "report.json"), "--json"], log


def wait_for_the_token(log: Path, proc: subprocess.Popen[Any], read: int | None = None) -> None:
    """Until the batch's first document reaches the token (its intent is in
    the audit log); ``read``: a terminal's end, read meanwhile as a terminal is."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if read is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(read, 65536)
        if log.exists() and b'"document-intent"' in log.read_bytes():
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the batch never reached the token")


@pytest.mark.parametrize(
    ("signum", "group"),
    [
        (signal.SIGTERM, False),  # `timeout`, kill PID
        (signal.SIGINT, False),
        (signal.SIGTERM, True),  # systemctl stop (KillMode=control-group: every process)
        (signal.SIGINT, True),  # Ctrl-C in a terminal (the foreground process group)
    ],
)
def test_a_stop_signal_ends_the_run_within_two_seconds_with_its_records(
    signkit: Runner, tmp_path: Path, signum: int, group: bool
) -> None:
    """Regression: SIGTERM (systemd, `timeout`) left no summary, report or
    run-end record, and the next run warned about every leftover temp file.
    Regression: SIGTERM to the whole process group, as `systemctl stop` sends
    it, ended the workers with the main process, so the documents the token
    had signed failed as an internal error (BrokenProcessPool) instead of
    being finished. The token is slowed (0.3 s a signature) so the stop lands
    mid-batch."""
    argv, log = slow_batch(tmp_path, 60)
    src, out, report = tmp_path / "in", tmp_path / "out", tmp_path / "report.json"
    proc = subprocess.Popen(
        argv,
        env=signkit.env(pin_env(signkit)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for_the_token(log, proc)
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - sent
    assert took < 2.0, took
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    data = json.loads(stdout)
    assert data["status"] == "interrupted" and data == json.loads(report.read_text())
    totals = data["totals"]
    assert totals["total"] == 60 and totals["not-attempted"] > 0
    assert totals["failed"] == 0, [d for d in data["documents"] if d["status"] == "failed"]
    assert totals["signed"] == len(list(out.glob("d*.pdf")))
    kinds = [r.get("type") for r in records(log)]
    assert "run-end" in kinds
    assert not list(out.glob(".signkit-tmp-*"))
    rerun = signkit(
        "sign",
        "pdf",
        str(src),
        "--output-dir",
        str(out),
        *KEY,
        "--revocation",
        "off",
        "--audit-log",
        str(log),
        "--json",
        env=pin_env(signkit),
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "left by an interrupted run" not in rerun.stderr
    assert json.loads(rerun.stdout)["totals"]["skipped"] == totals["signed"]


@pytest.mark.parametrize("nohup", [False, True])
def test_a_terminal_that_closes_stops_the_run_with_its_records(
    signkit: Runner, tmp_path: Path, nohup: bool
) -> None:
    """Regression: closing the terminal a batch ran in (SIGHUP to the session,
    every write to it failing with EIO from then on) killed the run at once:
    no report, no run-end record, the documents the token had signed thrown
    away. It now stops as for Ctrl-C, and what it can no longer print is
    dropped. Started under `nohup` (SIGHUP ignored, output to a file), the run
    outlives its terminal and signs everything. The run has the
    pseudo-terminal as its controlling terminal, as in a terminal window; the
    test closes the window's end mid-batch."""
    import pty
    import termios

    count = 20 if nohup else 60
    argv, log = slow_batch(tmp_path, count)
    out, report = tmp_path / "out", tmp_path / "report.json"
    window, terminal = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        if nohup:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    written = (tmp_path / "nohup.out").open("w") if nohup else None
    proc = subprocess.Popen(
        argv,
        env=signkit.env(pin_env(signkit)),
        cwd=REPO,
        stdin=terminal,
        stdout=written or terminal,
        stderr=written or terminal,
        preexec_fn=controlling_terminal,  # setsid, TIOCSCTTY and nohup's SIG_IGN only
    )
    os.close(terminal)
    os.set_blocking(window, False)
    try:
        wait_for_the_token(log, proc, read=window)
    finally:
        os.close(window)  # the window closes: SIGHUP, then EIO on every write
    code = proc.wait(timeout=60)
    if written is not None:
        written.close()
    data = json.loads(report.read_text())
    totals = data["totals"]
    assert totals["failed"] == 0, [d for d in data["documents"] if d["status"] == "failed"]
    assert totals["signed"] == len(list(out.glob("d*.pdf")))
    assert "run-end" in [r.get("type") for r in records(log)]
    assert not list(out.glob(".signkit-tmp-*"))
    if nohup:
        assert code == 0, (tmp_path / "nohup.out").read_text()
        assert totals["signed"] == count and data["status"] == "ok"
    else:
        assert code == 128 + signal.SIGHUP
        assert data["status"] == "interrupted" and totals["not-attempted"] > 0


# ---------------------------------------------------------------- files and paths


def test_report_temp_files_cannot_be_redirected(signkit: Runner, tmp_path: Path) -> None:
    """Regression: --report wrote through a predictable temp name
    (.<name>.tmp-<pid>) that a planted symlink redirected. The report path
    itself being a symlink replaces the link, never its target."""
    src = batch_of(tmp_path / "in", 1)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    reports = tmp_path / "reports"
    reports.mkdir()
    for pid in range(os.getpid(), os.getpid() + 2000):  # the old predictable names
        (reports / f".r.json.tmp-{pid}").symlink_to(victim)
    link = reports / "r.json"
    link.symlink_to(victim)
    proc = signkit(
        "sign",
        "pdf",
        str(src),
        "--output-dir",
        str(tmp_path / "out"),
        *KEY,
        "--revocation",
        "off",
        "--report",
        str(link),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=pin_env(signkit),
    )
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and json.loads(link.read_text())["totals"]["signed"] == 1


def test_atomic_write_refuses_a_planted_temp_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secrets

    from signkit.fsio import atomic_write

    victim = tmp_path / "victim"
    victim.write_text("precious")
    monkeypatch.setattr(secrets, "token_hex", lambda _n: "guessed")
    (tmp_path / ".report.json.guessed.tmp").symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic_write(tmp_path / "report.json", b"{}")
    assert victim.read_text() == "precious" and not (tmp_path / "report.json").exists()


@pytest.mark.parametrize(
    "output", ["/tmp/signkit-escape.pdf", "../escaped.pdf", "sub/../../escaped.pdf", "link/x.pdf"]
)
def test_manifest_outputs_stay_under_their_folder(
    signkit: Runner, tmp_path: Path, output: str
) -> None:
    """Regression: a manifest row could write anywhere the user can."""
    work = tmp_path / "batch"
    work.mkdir()
    shutil.copy(SAMPLES / "attachment.pdf", work / "a.pdf")
    (work / "link").symlink_to(tmp_path)
    manifest = work / "batch.csv"
    manifest.write_text(f"input,output\na.pdf,{output}\n")
    base = ["sign", "pdf", "--manifest", str(manifest), *KEY, "--revocation", "off"]
    base += ["--audit-log", str(tmp_path / "audit.jsonl")]
    proc = signkit(*base, env=pin_env(signkit))
    assert proc.returncode == 2, proc.stderr
    assert f"line 2: the output {output} lies outside" in proc.stderr
    assert "--allow-absolute-outputs" in proc.stderr
    assert not (tmp_path / "escaped.pdf").exists() and not Path("/tmp/signkit-escape.pdf").exists()
    if output.startswith("/"):
        allowed = signkit(*base, "--allow-absolute-outputs", env=pin_env(signkit))
        try:
            assert allowed.returncode == 0, allowed.stderr
            assert "Signature is Valid" in pdfsig(Path(output))
        finally:
            Path(output).unlink(missing_ok=True)


# ---------------------------------------------------------------- concurrency and exit codes


def test_a_document_locked_by_another_run_is_not_attempted_and_not_success(
    signkit: Runner, tmp_path: Path
) -> None:
    """Regression: a document another run held was 'skipped' with exit 0, so
    two runs into two output folders each believed they were complete."""
    src = batch_of(tmp_path / "in", 3)
    held = src / "d001.pdf"
    with held.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        proc = signkit(
            "sign",
            "pdf",
            str(src),
            "--output-dir",
            str(tmp_path / "out"),
            *KEY,
            "--revocation",
            "off",
            "--json",
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            env=pin_env(signkit),
        )
    assert proc.returncode == 75, proc.stderr
    data = json.loads(proc.stdout)
    row = next(d for d in data["documents"] if d["input"] == str(held))
    assert row["status"] == "not-attempted" and row["error_code"] == 75
    assert row["reason"] == f"locked by another signkit run (pid {os.getpid()})"
    assert data["totals"]["signed"] == 2 and data["status"] == "retry"


def test_a_document_left_to_another_run_is_named_with_the_reason(
    signkit: Runner, tmp_path: Path
) -> None:
    """Regression: without --json a document another run held was only counted
    ("1 not attempted") and exited 75, but neither the file nor the reason was
    on stderr. In a batch it is listed with the failures; alone, it is the
    one line, as a single failed document is."""
    src = batch_of(tmp_path / "in", 3)
    held = src / "d001.pdf"
    reason = f"locked by another signkit run (pid {os.getpid()})"
    wide = {**pin_env(signkit), "COLUMNS": "400"}  # one table row per line
    runs = {}
    with held.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        for name, target in (("batch", ["--output-dir", str(tmp_path / "out")]),
                             ("one", ["-o", str(tmp_path / "one.pdf")]),
                             ("vi", ["-o", str(tmp_path / "one.pdf")])):  # fmt: skip
            inputs = [str(src)] if name == "batch" else [str(held)]
            env = {**wide, "LANG": "vi_VN.UTF-8", "LC_ALL": ""} if name == "vi" else wide
            runs[name] = signkit(
                "sign", "pdf", *inputs, *target, *KEY, "--revocation", "off", env=env
            )
    batch, one, vi = runs["batch"], runs["one"], runs["vi"]
    assert batch.returncode == 75, batch.stderr
    rows = [line.split() for line in batch.stderr.splitlines() if str(held) in line]
    assert rows == [["not-attempted", str(held), *reason.split()]], batch.stderr
    assert batch.stderr.splitlines()[-1] == (
        "2 signed, 0 skipped, 0 failed, 1 not attempted (of 3)"
    )
    assert one.returncode == 75, one.stderr
    assert one.stderr.splitlines()[-1] == f"error: {held}: not attempted ({reason})"
    assert vi.returncode == 75, vi.stderr
    assert vi.stderr.splitlines()[-1].endswith(
        f"{held}: chưa thực hiện (đang bị khóa bởi một lần chạy signkit khác (pid {os.getpid()}))"
    ), vi.stderr
    assert not (tmp_path / "one.pdf").exists()


def test_ordinary_conditions_are_not_internal_errors(signkit: Runner, tmp_path: Path) -> None:
    """Regression: exit 70 for no input, for --report into a missing folder
    (after signing everything), and for a host without a serif font."""
    none = signkit("sign", "pdf", *KEY, env=pin_env(signkit))
    assert none.returncode == 2 and "give INPUT files or directories" in none.stderr
    src = batch_of(tmp_path / "in", 2)
    missing = signkit(
        "sign",
        "pdf",
        str(src),
        *KEY,
        "--revocation",
        "off",
        "--report",
        str(tmp_path / "no-such-dir" / "r.json"),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=pin_env(signkit),
    )
    assert missing.returncode == 3, missing.stderr
    assert "the report's directory does not exist" in missing.stderr
    assert not list(src.glob("*_signed.pdf"))  # checked before anything was signed
    no_fonts = tmp_path / "nofonts.py"
    no_fonts.write_text(
        "import sys, signkit.fontfiles as f\n"
        "f.SERIF_FONTS = ()  # a host without any serif font\n"
        "from signkit.cli import main\n"
        "sys.argv = ['signkit', *sys.argv[1:]]\n"
        "main()\n"
    )
    base = [sys.executable, str(no_fonts), "sign", "pdf", str(src), *KEY, "--revocation", "off"]
    base += ["--audit-log", str(tmp_path / "audit.jsonl"), "--output-dir"]
    env = signkit.env(pin_env(signkit))
    invisible = subprocess.run(
        [*base, str(tmp_path / "o1")], capture_output=True, text=True, env=env, check=False
    )
    assert invisible.returncode == 0, invisible.stderr
    visible = subprocess.run(
        [*base, str(tmp_path / "o2"), "--rect", "10,10,60,20"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert visible.returncode == 5, visible.stderr
    assert "no serif TrueType font for visible signatures" in visible.stderr
    assert "hint: install fonts-liberation2" in visible.stderr


def test_a_run_that_fails_as_a_whole_still_reports(signkit: Runner, tmp_path: Path) -> None:
    """Regression: a wrong PIN (or a missing token, a TSA down) printed no
    --json and wrote no --report."""
    src = batch_of(tmp_path / "in", 3)
    pin = tmp_path / "pin"
    pin.write_text("999999\n")
    pin.chmod(0o600)
    report = tmp_path / "r.json"
    proc = signkit(
        "sign",
        "pdf",
        str(src),
        *KEY,
        "--module",
        signkit.hsm.module,
        "--pin-file",
        str(pin),
        "--revocation",
        "off",
        "--json",
        "--report",
        str(report),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
    )
    assert proc.returncode == 4, proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads(report.read_text())
    assert data["status"] == "error" and data["exit_code"] == 4
    assert data["run_error"]["class"] == "PinIncorrectError" and data["run_error"]["code"] == 4
    assert [d["status"] for d in data["documents"]] == ["not-attempted"] * 3
    assert proc.stderr.count("error:") == 1 and "999999" not in proc.stderr + proc.stdout


def test_an_unreachable_tsa_asks_for_a_retry(signkit: Runner, tmp_path: Path) -> None:
    src = batch_of(tmp_path / "in", 2)
    proc = signkit(
        "sign",
        "pdf",
        str(src),
        *KEY,
        "--level",
        "B-T",
        "--tsa",
        "http://127.0.0.1:9/tsa",
        "--revocation",
        "off",
        "--json",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=pin_env(signkit),
    )
    assert proc.returncode == 75, proc.stderr
    assert "TSA unreachable" in proc.stderr and "hint: try again later" in proc.stderr
    assert json.loads(proc.stdout)["run_error"]["class"] == "TsaUnreachableError"


@pytest.mark.parametrize("fmt", ["pdf", "xml"])
def test_one_failed_document_exits_the_same_for_every_format(
    signkit: Runner, tmp_path: Path, fmt: str
) -> None:
    """Regression: `sign xml` exited 3 with one line where `sign pdf` exited 1
    with a table, for the same one-document failure."""
    bad = tmp_path / f"scan.{fmt}"
    bad.write_bytes(b"\x89PNG not a document")
    proc = signkit(
        "sign",
        fmt,
        str(bad),
        *KEY,
        "--revocation",
        "off",
        "--json",
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=pin_env(signkit),
    )
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), proc.stderr
    data = json.loads(proc.stdout)
    assert data["exit_code"] == 1 and data["documents"][0]["error_code"] == 3


def test_seals_forged_with_another_key_after_trusted_ones_are_tampering(
    signkit: Runner, tmp_path: Path
) -> None:
    """Regression: records appended and sealed with a key of the attacker's own
    were reported as 'unknown seal key' (exit 5), not as tampering."""
    src = batch_of(tmp_path / "in", 2)
    log = tmp_path / "audit.jsonl"
    base = ["sign", "pdf", str(src), *KEY, "--revocation", "off", "--audit-log", str(log)]
    first = signkit(*base, "--output-dir", str(tmp_path / "o1"), env=pin_env(signkit))
    assert first.returncode == 0, first.stderr
    trusted_pub = signkit.state / "signkit" / "audit-seal.key.pub"
    assert trusted_pub.exists()
    forged = signkit(
        *base,
        "--output-dir",
        str(tmp_path / "o2"),
        "--audit-seal-key",
        str(tmp_path / "attacker.key"),
        env=pin_env(signkit),
    )
    assert forged.returncode == 0, forged.stderr
    checked = signkit("audit", "verify", str(log), "--seal-key", str(trusted_pub))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "forged-seal" in checked.stdout + checked.stderr
