"""What a scheduled job sees: an empty inbox is success, progress off a
terminal, syslog priorities when stderr is the journal, -q, and results on
stdout with diagnostics on stderr."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from support.infra import REPO, SoftHsm, batch_of, pki_certificate
from support.runner import Runner
from support.subreaper import under_subreaper

pytestmark = pytest.mark.softhsm


def signing(signkit: Runner, softhsm: SoftHsm, *args: str):  # type: ignore[no-untyped-def]
    """`signkit sign pdf` as cron runs it: PIN in the environment, no terminal."""
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    token = ["--token-label", "signkit-demo"]
    return signkit("sign", "pdf", *args, *token, "--revocation", "off", "--no-audit", env=env)


@pytest.mark.parametrize("command", [["sign", "pdf"], ["sign", "xml"], ["verify"]])
def test_an_empty_inbox_is_success_in_one_line(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, command: list[str]
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notes.txt").write_text("not a document\n")
    env = {"SIGNKIT_MODULE": softhsm.module}  # no PIN: nothing may need the token
    report = tmp_path / "report.json"
    for given in (str(inbox), str(inbox / "*.pdf"), str(inbox / "*.xml")):
        proc = signkit(*command, given, "--report", str(report), env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == ""
        (line,) = proc.stderr.splitlines()
        assert line.startswith(f"nothing to do: {given}: no ") and " files found" in line
        data = json.loads(report.read_text())
        assert data["status"] == "ok" and data["exit_code"] == 0 and data["documents"] == []
        assert data["nothing_to_do"] == line.removeprefix("nothing to do: ")
    as_json = signkit(*command, str(inbox), "--json", env=env)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["nothing_to_do"]
    # those who want the error ask for it: exit 3, one error line
    strict = signkit(*command, str(inbox), "--require-input", env=env)
    assert strict.returncode == 3
    assert strict.stderr.startswith(f"error: {inbox}: no ") and strict.stdout == ""
    # an inbox that does not exist is still an error
    gone = signkit(*command, str(tmp_path / "gone"), env=env)
    assert gone.returncode == 3 and "no such file or directory" in gone.stderr
    gone_glob = signkit(*command, str(tmp_path / "gone" / "*.pdf"), env=env)
    assert gone_glob.returncode == 3 and "the pattern matches no file" in gone_glob.stderr
    # an empty folder beside a full one is not an error either
    full = batch_of(tmp_path / "full", 1)
    if command == ["verify"]:
        mixed = signkit("verify", str(inbox), str(full), "--json", env=env)
        assert [d["input"] for d in json.loads(mixed.stdout)["documents"]] == [
            str(full / "d000.pdf")
        ]


def test_progress_lines_off_a_terminal(signkit: Runner, softhsm: SoftHsm, tmp_path: Path) -> None:
    batch_of(tmp_path / "in", 5)
    out = ["--output-dir", str(tmp_path / "out"), "--progress-every", "2"]
    proc = signing(signkit, softhsm, str(tmp_path / "in"), *out)
    assert proc.returncode == 0, proc.stderr
    progress = [x for x in proc.stderr.splitlines() if x.startswith("progress: ")]
    assert [x.split(" documents")[0] for x in progress] == [
        "progress: 2 of 5",
        "progress: 4 of 5",
    ]
    assert progress[0].startswith("progress: 2 of 5 documents done (2 signed), 0m")
    assert proc.stderr.splitlines()[-1] == "5 signed, 0 skipped, 0 failed, 0 not attempted (of 5)"
    # none with -q, nor with --progress-every 0
    for quiet in (["-q"], ["--progress-every", "0"]):
        again = signing(
            signkit, softhsm, str(tmp_path / "in"), "--output-dir", str(tmp_path / "o2"), *quiet
        )
        assert again.returncode == 0 and "progress:" not in again.stderr


def journal_run(argv: list[str], env: dict[str, str], *, journal: bool) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pipe and JOURNAL_STREAM naming that pipe
    (as systemd names the journal's stream), or naming another file."""
    read_end, write_end = os.pipe()
    other_read, other_write = os.pipe()
    st = os.fstat(write_end if journal else other_write)
    stream = f"{st.st_dev}:{st.st_ino}"
    os.close(other_read)
    os.close(other_write)
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        proc = subprocess.run(
            argv,
            stdout=subprocess.PIPE,
            stderr=write_end,
            env={**env, "JOURNAL_STREAM": stream},
            cwd=REPO,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
        reader.join()
        os.close(read_end)
    return proc.returncode, proc.stdout.decode(), b"".join(chunks).decode()


def test_syslog_priorities_when_stderr_is_the_journal(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    inbox = batch_of(tmp_path / "in", 2)
    (inbox / "scan.pdf").write_bytes(b"not a PDF at all\n")
    argv = [
        sys.executable, "-m", "signkit", "sign", "pdf", str(inbox),
        "--output-dir", str(tmp_path / "out"), "--revocation", "off", "--no-audit",
        "--token-label", "signkit-demo",
    ]  # fmt: skip
    env = signkit.env({"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin})
    code, stdout, stderr = journal_run(argv, env, journal=True)
    assert code == 1 and stdout == ""
    lines = stderr.splitlines()
    assert all(line[:3] in ("<3>", "<4>", "<6>") for line in lines), lines
    assert "<4>warning: audit log disabled (--no-audit): this run leaves no audit record" in lines
    assert "<4>warning: no trust anchors configured" in stderr
    failed = [line for line in lines if "scan.pdf" in line]
    assert failed and all(line.startswith("<3>") for line in failed)
    assert lines[-1] == "<6>2 signed, 0 skipped, 1 failed, 0 not attempted (of 3)"
    # journalctl -p warning: what a person must see
    warnings = [line for line in lines if line[:3] in ("<3>", "<4>")]
    assert any("not a PDF" in line for line in warnings)

    # JOURNAL_STREAM inherited by a process whose stderr is something else: no prefixes
    code, _stdout, stderr = journal_run([*argv, "--force"], env, journal=False)
    assert code == 1 and not any(line.startswith("<") for line in stderr.splitlines())


def test_quiet_keeps_only_errors_and_the_summary(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    inbox = batch_of(tmp_path / "in", 2)
    (inbox / "scan.pdf").write_bytes(b"not a PDF at all\n")
    loud = signing(signkit, softhsm, str(inbox), "--output-dir", str(tmp_path / "a"))
    assert loud.returncode == 1 and "warning: " in loud.stderr
    quiet = signing(signkit, softhsm, str(inbox), "--output-dir", str(tmp_path / "b"), "-q")
    assert quiet.returncode == 1 and quiet.stdout == ""
    lines = quiet.stderr.splitlines()
    assert "warning" not in quiet.stderr
    assert lines[-1] == "2 signed, 0 skipped, 1 failed, 0 not attempted (of 3)"
    assert any("scan.pdf" in line and "not a PDF" in line for line in lines[:-1])
    # one document: its error in one line, with -q too
    single = signing(signkit, softhsm, str(inbox / "scan.pdf"), "-o", str(tmp_path / "x.pdf"), "-q")
    assert single.returncode == 1
    assert single.stderr.splitlines() == [
        f"error: {inbox / 'scan.pdf'}: not a PDF (no %PDF- header)"
    ]


def test_results_on_stdout_diagnostics_on_stderr(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    inbox = batch_of(tmp_path / "in", 2)
    signed = signing(signkit, softhsm, str(inbox), "--output-dir", str(tmp_path / "out"))
    assert signed.returncode == 0 and signed.stdout == ""  # a signing run's data are its files
    env = {"SIGNKIT_MODULE": softhsm.module}
    verify = signkit("verify", str(tmp_path / "out"), "--no-audit", env=env)
    # no --trust: INDETERMINATE (6); the verdicts are what was asked for
    assert verify.returncode == 6
    out_lines = verify.stdout.splitlines()
    assert out_lines[0] == f"{tmp_path / 'out'}/"  # the folder, its files under it
    assert sum(line.strip().startswith("INDETERMINATE  d0") for line in out_lines) == 2
    assert out_lines[-1] == "0 passed, 2 indeterminate, 0 failed (of 2)"
    assert "INDETERMINATE" not in verify.stderr
    as_json = signkit("verify", str(tmp_path / "out"), "--no-audit", "--json", env=env)
    assert len(json.loads(as_json.stdout)["documents"]) == 2  # the JSON replaces the table
    assert as_json.stderr.splitlines()[-1] == "0 passed, 2 indeterminate, 0 failed (of 2)"
    dry = signing(signkit, softhsm, str(inbox), "--output-dir", str(tmp_path / "o2"), "--dry-run")
    assert dry.returncode == 0 and "d000.pdf" in dry.stdout and "planned" in dry.stdout
    assert dry.stderr.splitlines()[-1] == "dry run: 2 planned, 0 skipped (of 2)"
    # what the dry run finds wrong is a failure, on stderr; the listing keeps the rest
    (inbox / "scan.pdf").write_bytes(b"not a PDF at all\n")
    dry = signing(signkit, softhsm, str(inbox), "--output-dir", str(tmp_path / "o3"), "--dry-run")
    assert dry.returncode == 1 and "d000.pdf" in dry.stdout and "scan.pdf" not in dry.stdout
    assert "scan.pdf" in dry.stderr and "not a PDF" in dry.stderr, dry.stderr
    # one document: its error line, as for any bad input
    one = signing(
        signkit, softhsm, str(inbox / "scan.pdf"), "-o", str(tmp_path / "x.pdf"), "--dry-run"
    )
    assert one.returncode == 1 and one.stdout == ""
    errors = [line for line in one.stderr.splitlines() if not line.startswith("warning: ")]
    assert errors == [f"error: {inbox / 'scan.pdf'}: not a PDF (no %PDF- header)"]


def test_a_run_leaves_no_process_behind(signkit: Runner, softhsm: SoftHsm, tmp_path: Path) -> None:
    """Regression: every run that forked workers left one process behind (the
    pool's zygote), a zombie for whoever adopts it; under a container's first
    process that never reaps, a scheduled job left one more each run. A run
    that ended before signing (a usage error) left all its workers."""
    left = tmp_path / "left.txt"
    program = under_subreaper(left, sys.executable, "-m", "signkit")
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    token = ["--token-label", "signkit-demo", "--revocation", "off", "--no-audit"]
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    invoices = tmp_path / "invoices"
    invoices.mkdir()
    shutil.copy(REPO / "fixtures" / "xml" / "einvoice.xml", invoices / "a.xml")
    runs = {
        "sign pdf": (0, ["sign", "pdf", str(batch_of(tmp_path / "in", 3)), "--output-dir",
                         str(tmp_path / "out"), *token]),
        "sign xml": (0, ["sign", "xml", str(invoices), "--output-dir", str(tmp_path / "xml"),
                         *token]),
        "verify": (0, ["verify", str(tmp_path / "out"), str(tmp_path / "xml"),
                       "--trust", str(trust)]),
        # ended before a job took the workers started for it
        "a missing input": (3, ["sign", "xml", str(tmp_path / "gone"), "--output-dir",
                                str(tmp_path / "x2"), *token]),
        "a wrong option": (2, ["sign", "pdf", str(tmp_path / "in"), "--output-dir",
                               str(tmp_path / "p2"), "--level", "B-Q", *token]),
    }  # fmt: skip
    for name, (code, args) in runs.items():
        proc = signkit(*args, env=env, program=program)
        assert proc.returncode == code, (name, proc.stderr)
        assert left.read_text() == "", f"{name} left behind (pid:state): {left.read_text()}"


def test_a_reader_of_stdout_that_went_away_is_no_internal_error(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    """Regression: `sign … --json` whose stdout reader had gone (`| head`, a
    log shipper that died) ended as an internal error (exit 70,
    BrokenPipeError) after signing. The documents and the report file are
    what count: the run ends as it would, the JSON it could not write makes
    the exit code 1 (as a failed final flush always did)."""
    inbox = batch_of(tmp_path / "in", 2)
    report = tmp_path / "report.json"
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before anything is written
    argv = [
        sys.executable, "-m", "signkit", "sign", "pdf", str(inbox), "--output-dir",
        str(tmp_path / "out"), "--token-label", "signkit-demo", "--revocation", "off",
        "--no-audit", "--json", "--report", str(report),
    ]  # fmt: skip
    env = signkit.env({"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin})
    try:
        proc = subprocess.run(
            argv, stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
            timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 1, proc.stderr
    assert "internal error" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == "2 signed, 0 skipped, 0 failed, 0 not attempted (of 2)"
    assert json.loads(report.read_text())["totals"]["signed"] == 2
    assert len(list((tmp_path / "out").glob("d*.pdf"))) == 2
