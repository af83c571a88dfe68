"""The audit log of real signing runs: records, seals, TSA, crashes, concurrency, syslog.

Real SoftHSM token, live test PKI (OCSP/CRL/TSA), `signkit` in subprocesses.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from signkit.audit.log import timestamp_message
from support.events import wait_for
from support.infra import FIXTURES, REPO, TSA_URL, SoftHsm, batch_of, pki_certificate
from support.p11shim import Shim
from support.runner import Runner, cron_env

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn line
    return out


def verify(signkit: Runner, log: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return signkit("audit", "verify", str(log), "--json", *extra)


def sign_cmd(src: Path, out: Path, log: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "signkit",
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
        *extra,
    ]


def test_a_signing_run_leaves_sealed_time_stamped_records(  # type: ignore[no-untyped-def]
    sk, signkit: Runner, softhsm: SoftHsm, tmp_path: Path, trust: Path
) -> None:
    src = batch_of(tmp_path / "in", 2)
    shutil.copy(SAMPLES / "decision.pdf", src / "d002.pdf")  # a text-rich document
    (src / "broken.pdf").write_bytes(b"not a pdf at all")
    out = tmp_path / "out"
    proc = sk(
        str(src),
        "--output-dir",
        str(out),
        *KEY,
        "--trust",
        str(trust),
        "--audit-tsa",
        TSA_URL,
    )
    assert proc.returncode == 1, proc.stderr  # the broken one failed
    log = tmp_path / "audit.jsonl"
    recs = records(log)
    start = next(r for r in recs if r["type"] == "run-start")
    run = start["run"]
    assert all(r["run"] == run for r in recs)
    assert start["os_user"] and start["host"] and start["signkit_version"]
    assert start["command"] == "sign pdf" and "--audit-tsa" in start["options"]
    assert start["time"][-6] in "+-"  # UTC instant with the local offset
    assert start["token"]["label"] == "signkit-test-a" and start["token"]["serial"]
    assert start["token"]["model"] and start["token"]["manufacturer"]
    signer = start["signer"]
    assert signer["subject"].startswith("CN=signkit Test Signer RSA-2048")
    assert signer["serial"] and len(signer["sha256"]) == 64
    evidence = signer["revocation_evidence"]
    ocsp = [e for e in evidence if e["kind"] == "ocsp"]
    assert (
        ocsp and hashlib.sha256(base64.b64decode(ocsp[0]["der"])).hexdigest() == (ocsp[0]["sha256"])
    )
    end = next(r for r in recs if r["type"] == "run-end")
    assert end["started"] and end["finished"] and end["totals"]["signed"] == 3
    for path in sorted(src.glob("d*.pdf")):
        intent = next(r for r in recs if r["type"] == "document-intent" and r["input"] == str(path))
        result = next(r for r in recs if r["type"] == "document-result" and r["input"] == str(path))
        output = out / path.name
        assert intent["seq"] < result["seq"]
        assert intent["size_before"] == path.stat().st_size
        assert intent["sha256_before"] == result["sha256_before"] == sha256(path)
        assert result["status"] == "signed" and result["output"] == str(output)
        assert result["sha256_after"] == sha256(output)
        assert result["size_after"] == output.stat().st_size
        assert result["format"] == "pdf" and result["level"] == "B-B"
        published = [r for r in recs if r["type"] == "published" and result["doc"] in r["docs"]]
        assert published and published[0]["seq"] > result["seq"]
    failed = next(r for r in recs if r.get("input") == str(src / "broken.pdf"))
    assert failed["status"] == "failed" and failed["error_class"] == "InputFormatError"
    assert "not a PDF" in failed["error"]
    stamp = [r for r in recs if r["type"] == "seal-timestamp"]
    assert len(stamp) == 1 and stamp[0]["token"] and recs[-1]["type"] == "seal"
    check = verify(signkit, log)
    assert check.returncode == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["timestamps"][0]["gen_time"] == stamp[0]["gen_time"]
    assert report["timestamps"][0]["tsa_trusted"] is None  # no --tsa-trust: not claimed
    trusted = verify(signkit, log, "--tsa-trust", str(trust))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert json.loads(trusted.stdout)["timestamps"][0]["tsa_trusted"] is True
    stranger = tmp_path / "stranger.der"
    stranger.write_bytes(pki_certificate("signer-rsa3072"))
    untrusted = verify(signkit, log, "--tsa-trust", str(stranger))
    assert untrusted.returncode == 5
    assert json.loads(untrusted.stdout)["key_problem"]["kind"] == "untrusted-tsa"
    assert "hint: pass the TSA's root with --tsa-trust" in untrusted.stderr
    assert report["anchor_checked"] == 2  # the run's last seal and its time-stamp
    # the referee (openssl ts) agrees: the time-stamp covers the run's last seal
    token = tmp_path / "token.der"
    token.write_bytes(base64.b64decode(stamp[0]["token"]))
    message = tmp_path / "message"
    message.write_bytes(timestamp_message(stamp[0]["covers_seq"], stamp[0]["covers_sha256"]))
    covered = next(r for r in recs if r["seq"] == stamp[0]["covers_seq"])
    assert covered["type"] == "seal"
    chain = tmp_path / "chain.pem"
    chain.write_text(_pem(pki_certificate("root-ca")) + _pem(pki_certificate("interm-ca")))
    reply = subprocess.run(
        [
            *("openssl", "ts", "-verify", "-data", str(message), "-in", str(token)),
            *("-token_in", "-CAfile", str(chain), "-untrusted", str(chain)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert reply.returncode == 0 and "Verification: OK" in reply.stdout, reply.stderr
    # outside referees for the log itself: every `prev` is the SHA-256 of the line
    # before (hashlib), and every seal verifies with the public key (openssl)
    assert_chain_and_seals(log, tmp_path / "state/signkit/audit-seal.key.pub", tmp_path)
    # neither the PIN nor any document text is in the log, the anchor, the report
    texts = _document_lines(src / "d002.pdf")
    assert len(texts) >= 10
    for file in (log, tmp_path / "audit.jsonl.anchor"):
        data = file.read_text(encoding="utf-8")
        assert softhsm.user_pin not in data
        for word in texts:
            assert word not in data, word


SEAL_SIG = re.compile(rb',"sig":"([A-Za-z0-9+/=]+)"')


def assert_chain_and_seals(log: Path, public_key: Path, tmp: Path) -> None:
    """The log judged without signkit: each line's `prev` is the SHA-256 of the
    line before; each seal's Ed25519 signature, checked by openssl, covers the
    domain string and the seal line as written, less its `sig` member."""
    lines = log.read_bytes().splitlines()
    for before, line in itertools.pairwise(lines):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()
    seals = [line for line in lines if json.loads(line)["type"] == "seal"]
    assert seals
    for n, line in enumerate(seals):
        found = SEAL_SIG.search(line)
        assert found is not None, line
        message = tmp / f"seal-{n}.msg"
        signature = tmp / f"seal-{n}.sig"
        message.write_bytes(
            b"signkit-audit-seal-v1\n" + line[: found.start()] + line[found.end() :]
        )
        signature.write_bytes(base64.b64decode(found.group(1)))
        proc = subprocess.run(
            [
                *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public_key)),
                *("-rawin", "-in", str(message), "-sigfile", str(signature)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0 and "Signature Verified Successfully" in proc.stdout, (
            proc.stdout + proc.stderr
        )
    # the control: one changed byte under a seal, and openssl refuses it
    message = tmp / "seal-0.msg"
    message.write_bytes(message.read_bytes().replace(b'"seq":', b'"seq": ', 1))
    bad = subprocess.run(
        [
            *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public_key)),
            *("-rawin", "-in", str(message), "-sigfile", str(tmp / "seal-0.sig")),
        ],
        capture_output=True,
        check=False,
    )
    assert bad.returncode != 0


def _pem(der: bytes) -> str:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _document_lines(pdf: Path) -> set[str]:
    """The document's lines of text (pdftotext, the referee), each as a phrase."""
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return {" ".join(line.split()) for line in text.splitlines() if len(line.strip()) >= 10}


def test_a_rejected_pin_is_recorded_without_the_pin(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    wrong = "271828"
    log = tmp_path / "audit.jsonl"
    src = batch_of(tmp_path / "in", 1)
    proc = signkit(
        "sign",
        "pdf",
        str(src),
        "--token-label",
        "signkit-test-b",
        "--revocation",
        "off",
        "--audit-log",
        str(log),
        env={"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": wrong},
    )
    assert proc.returncode == 4 and "PIN rejected" in proc.stderr
    recs = records(log)
    failure = next(r for r in recs if r["type"] == "login-failed")
    assert failure["token"]["label"] == "signkit-test-b" and failure["token"]["serial"]
    assert failure["error_class"] == "PinIncorrectError" and failure["os_user"]
    assert recs[-1]["type"] == "seal"
    data = log.read_text()
    assert wrong not in data and softhsm.user_pin not in data
    assert verify(signkit, log).returncode == 0
    # clear the unattended guard this left, for the state directory's sake
    signkit("token", "clear-guard", "--module", softhsm.module, "--token-label", "signkit-test-b")


def test_two_batches_at_once_share_one_intact_chain(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    env = cron_env(softhsm, tmp_path / "state")
    procs = []
    for name in ("a", "b"):
        src = batch_of(tmp_path / f"in-{name}", 8, prefix=name)
        procs.append(
            subprocess.Popen(
                sign_cmd(src, tmp_path / f"out-{name}", log, "--jobs", "1"),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        _out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    recs = records(log)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    runs = {r["run"] for r in recs if r["type"] == "run-start"}
    assert len(runs) == 2
    for name in ("a", "b"):
        for i in range(8):
            output = tmp_path / f"out-{name}" / f"{name}{i:03d}.pdf"
            kinds = [
                r["type"]
                for r in recs
                if r.get("output") == str(output) and r["type"].startswith("document-")
            ]
            assert kinds == ["document-intent", "document-result"], (output, kinds)
    check = verify(signkit, log, "--seal-key", str(tmp_path / "state/signkit/audit-seal.key.pub"))
    assert check.returncode == 0, check.stdout + check.stderr


def count(log: Path, kind: str) -> int:
    return sum(1 for r in records(log) if r["type"] == kind) if log.exists() else 0


# Where each kill -9 lands, decided by events, not by a timer: the test
# PKCS#11 module holding the Nth signature (the run is then inside that
# document's signing), or a record of a kind appearing in the log.
KILL_POINTS = [
    ("hold", 1, 0),  # at the first signature: nothing signed yet
    ("hold", 2, 0),  # inside the second document
    ("hold", 6, 0),
    ("hold", 9, 1),  # eight signed; wait for one output (finishes go in eights)
    ("hold", 12, 4),  # eleven signed, at least four published
    ("record", "document-intent", 1),
    ("record", "document-result", 5),
    ("record", "published", 1),
    ("record", "run-end", 1),
]


def test_kill_9_at_known_points_leaves_at_most_a_torn_last_line(
    signkit: Runner, softhsm: SoftHsm, p11shim: Shim, tmp_path: Path
) -> None:
    """kill -9 of a real batch at nine known points: the log verifies (a torn
    last line at worst), the next run marks and continues, and every visible
    output has its record."""
    log = tmp_path / "audit.jsonl"
    state = tmp_path / "state"
    # SoftHSM's own files do not survive kill -9 at any point (its token store
    # can lose a token): each trial starts from a pristine private copy, so
    # this test neither depends on nor harms the session's token.
    hsm = tmp_path / "hsm"
    subprocess.run(
        [
            *(sys.executable, str(REPO / "softhsm" / "init_tokens.py")),
            *("--dir", str(hsm), "--tokens", "signkit-test-a"),
        ],
        check=True,
        capture_output=True,
    )
    pristine = tmp_path / "hsm-pristine"
    shutil.copytree(hsm, pristine)
    env = {**cron_env(softhsm, state), "SOFTHSM2_CONF": str(hsm / "softhsm2.conf")}
    src = batch_of(tmp_path / "in", 12)
    torn_seen = 0
    for trial, (how, what, wanted) in enumerate(KILL_POINTS):
        shutil.rmtree(hsm)
        shutil.copytree(pristine, hsm)
        out = tmp_path / f"out-{trial}"
        held = tmp_path / f"held-{trial}"
        before = {kind: count(log, kind) for kind in ("document-intent", "document-result")}
        before.update(published=count(log, "published"), **{"run-end": count(log, "run-end")})
        faults = p11shim.env(hold_at=what, hold_file=held) if how == "hold" else p11shim.env()
        proc = subprocess.Popen(
            [*sign_cmd(src, out, log, "--jobs", "1"), "--module", str(p11shim.path)],
            env={**env, **faults},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            if how == "hold":
                wait_for(held.exists, what=f"signature {what} at the token")
                wait_for(
                    lambda out=out, wanted=wanted: len(list(out.glob("d*.pdf"))) >= wanted,
                    what=f"{wanted} outputs",
                )
            else:
                assert isinstance(what, str)
                wait_for(
                    lambda what=what, wanted=wanted, before=before: (
                        count(log, what) - before[what] >= wanted
                    ),
                    what=f"{wanted} {what} record(s)",
                )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if how == "hold":  # the run was inside the batch: it never ended
            assert count(log, "run-end") == before["run-end"], trial
            assert len(list(out.glob("d*.pdf"))) >= wanted
        check = verify(signkit, log, "--seal-key", str(state / "signkit/audit-seal.key.pub"))
        report = json.loads(check.stdout)
        assert check.returncode == 0, (trial, report)
        problems = [n for n in report["notes"] if "torn last line" in n]
        torn_seen += bool(problems)
        assert all("torn" in n or "no anchor" in n or "anchor" in n for n in report["notes"]), (
            report["notes"]
        )
    # the next run after the last kill finishes, and marks a torn line if there is one
    shutil.rmtree(hsm)
    shutil.copytree(pristine, hsm)
    # kill -9 cannot cut a small write() to a local file in half; a power cut
    # or a full disk can. Leave such a torn line for the next run to find.
    with log.open("ab") as fh:
        fh.write(b'{"seq":99999,"prev":"0123')
    torn = verify(signkit, log, "--seal-key", str(state / "signkit/audit-seal.key.pub"))
    assert torn.returncode == 0 and any(
        "torn last line" in n for n in json.loads(torn.stdout)["notes"]
    )
    final_out = tmp_path / "out-final"
    done = subprocess.run(sign_cmd(src, final_out, log), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    check = verify(signkit, log, "--seal-key", str(state / "signkit/audit-seal.key.pub"))
    report = json.loads(check.stdout)
    assert check.returncode == 0 and not any("torn last line" in n for n in report["notes"])
    assert any("marked by the next run" in n for n in report["notes"])
    recs = records(log)
    assert [r["seq"] for r in recs] == list(range(1, len(recs) + 1))
    # each torn line is marked once, by the next run that wrote (ours at least)
    assert 1 <= sum(r["type"] == "torn-line" for r in recs) <= torn_seen + 1
    signed = {
        r["output"]: r for r in recs if r["type"] == "document-result" and r["status"] == "signed"
    }
    outputs = sorted(tmp_path.glob("out-*/d*.pdf"))  # not the dead runs' temp files
    assert outputs
    for path in outputs:  # every visible signed file has its durable result record
        assert str(path) in signed, path
        assert signed[str(path)]["sha256_after"] == sha256(path)
    published = {(r["run"], d) for r in recs if r["type"] == "published" for d in r["docs"]}
    for record in signed.values():  # a published `signed` claim always has its file
        if (record["run"], record["doc"]) in published:
            assert Path(record["output"]).is_file(), record
    assert softhsm.user_pin not in log.read_text(encoding="utf-8", errors="replace")


def test_syslog_gets_every_record_and_serves_as_an_anchor(  # type: ignore[no-untyped-def]
    sk, signkit: Runner, tmp_path: Path
) -> None:
    sock_path = str(tmp_path / "syslog.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.settimeout(0.5)
    received: list[str] = []
    signing = threading.Event()
    signing.set()

    def daemon() -> None:  # reads as it comes, as a syslog daemon does
        while True:
            try:
                received.append(sock.recv(1 << 20).decode())
            except TimeoutError:
                if not signing.is_set():
                    return

    reader = threading.Thread(target=daemon)
    reader.start()
    try:
        src = batch_of(tmp_path / "in", 2)
        proc = sk(
            str(src),
            "--output-dir",
            str(tmp_path / "out"),
            *KEY,
            "--revocation",
            "off",
            "--audit-syslog",
            env={"SIGNKIT_SYSLOG_SOCKET": sock_path},
        )
        assert proc.returncode == 0, proc.stderr
    finally:
        signing.clear()
        reader.join()
        sock.close()
    log = tmp_path / "audit.jsonl"
    lines = log.read_text().splitlines()
    copies = [m.split("signkit-audit: ", 1)[1].rstrip("\x00") for m in received]
    assert all(m.startswith("<") for m in received)  # syslog priority header
    assert copies == lines
    # the syslog copy is an anchor kept elsewhere: it catches a cut-off log
    anchor = tmp_path / "from-syslog.jsonl"
    anchor.write_text("\n".join(copies) + "\n")
    assert verify(signkit, log, "--anchor", str(anchor)).returncode == 0
    log.write_text("\n".join(lines[:3]) + "\n")
    cut = verify(signkit, log, "--anchor", str(anchor))
    assert cut.returncode == 1
    assert json.loads(cut.stdout)["problem"]["kind"] in ("truncated", "unsealed")
    # no syslog socket at all: a clear configuration error before anything is signed
    missing = sk(
        str(src),
        "--output-dir",
        str(tmp_path / "out2"),
        *KEY,
        "--audit-syslog",
        env={"SIGNKIT_SYSLOG_SOCKET": str(tmp_path / "nothing.sock")},
    )
    assert missing.returncode == 5 and "cannot reach syslog" in missing.stderr
    assert not (tmp_path / "out2").exists() or not list((tmp_path / "out2").glob("*.pdf"))


def fill_datagram_queue(path: str) -> list[socket.socket]:
    """Fill the queue of the datagram socket at ``path`` until it takes nothing
    more, whatever the host allows (net.unix.max_dgram_qlen is 10 by default,
    512 under systemd): when a fresh sender's first datagram would block, the
    receiver is full. The senders are returned, to keep their datagrams queued."""
    fillers: list[socket.socket] = []
    while len(fillers) < 1000:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setblocking(False)
        sender.connect(path)
        fillers.append(sender)
        sent = 0
        try:
            while True:
                sender.send(b"<14>filler")
                sent += 1
        except BlockingIOError:
            pass  # this sender's buffer, or the receiver's queue, is full
        if sent == 0:
            return fillers
    raise AssertionError("the datagram queue never filled")


def test_a_syslog_that_stops_reading_does_not_hang_the_run(  # type: ignore[no-untyped-def]
    sk, tmp_path: Path
) -> None:
    """A syslog daemon that stopped reading: its queue is full before the run
    starts, so the first record's send would block for ever. The run gives
    syslog up after one timed-out send, says so, and the file has everything."""
    sock_path = str(tmp_path / "syslog.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    fillers = fill_datagram_queue(sock_path)
    try:
        src = batch_of(tmp_path / "in", 6)
        proc = sk(
            str(src),
            "--output-dir",
            str(tmp_path / "out"),
            *KEY,
            "--revocation",
            "off",
            "--audit-syslog",
            env={"SIGNKIT_SYSLOG_SOCKET": sock_path},
            timeout=60,
        )
    finally:
        for filler in fillers:
            filler.close()
        sock.close()
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").glob("*.pdf"))) == 6
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    # not one record reached the full queue: every one is counted as not sent
    assert f"{len(lines)} audit record(s) not sent to syslog" in proc.stderr, proc.stderr
    assert len(lines) > 10  # the file, the record of truth, has them all


def test_rotation_by_size_during_signing(  # type: ignore[no-untyped-def]
    sk, signkit: Runner, tmp_path: Path
) -> None:
    src = batch_of(tmp_path / "in", 6)
    for n in range(2):
        proc = sk(
            str(src),
            "--output-dir",
            str(tmp_path / f"out{n}"),
            *KEY,
            "--revocation",
            "off",
            "--audit-max-bytes",
            "4000",
        )
        assert proc.returncode == 0, proc.stderr
    check = verify(signkit, tmp_path / "audit.jsonl")
    report = json.loads(check.stdout)
    assert check.returncode == 0, report
    assert len(report["files"]) >= 3
    assert all(Path(f).stat().st_size < 4000 + 8000 for f in report["files"])
    # every document result is still found across the files
    shown = signkit("audit", "show", str(tmp_path / "audit.jsonl"), "--json", "--outcome", "signed")
    assert len(json.loads(shown.stdout)) == 12


def test_no_audit_is_noted(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = batch_of(tmp_path / "in", 1)
    proc = sk(str(src), *KEY, "--revocation", "off", "--no-audit")
    assert proc.returncode == 0
    assert "audit log disabled (--no-audit)" in proc.stderr
    assert not (tmp_path / "audit.jsonl").exists()
