"""`signkit audit verify|show|rotate|key` as a user runs them: exit codes and messages."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from signkit.audit.log import AuditLog, AuditSpec

REPO = Path(__file__).resolve().parents[2]


def run(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(state), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "signkit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=60,
    )


def one_run(log: Path, *, user: str, docs: list[tuple[str, str]], cert: str) -> None:
    audit = AuditLog(log)
    audit.add(
        {
            "type": "run-start",
            "os_user": user,
            "host": "vp-ubnd",
            "signer": {
                "subject": f"CN={cert},O=UBND",
                "sha256": cert.encode().hex().ljust(64, "0"),
            },
            "token": {"label": "VNPT-CA", "serial": "5401"},
        }
    )
    for name, status in docs:
        record = {
            "type": "document-result",
            "input": f"/inbox/{name}",
            "output": f"/signed/{name}",
            "status": status,
        }
        audit.add(record)
    audit.commit()
    audit.close()


@pytest.fixture
def logged(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    os.environ["XDG_STATE_HOME"] = str(state)
    try:
        log = state / "signkit" / "audit.jsonl"
        one_run(
            log,
            user="lan",
            docs=[("qd-01.pdf", "signed"), ("qd-02.pdf", "failed")],
            cert="Tran Thi Binh",
        )
        one_run(
            log,
            user="minh",
            docs=[("cv-07.pdf", "signed"), ("hd-03.xml", "skipped")],
            cert="Le Van Minh",
        )
    finally:
        del os.environ["XDG_STATE_HOME"]
    return state, log


def test_verify_ok_and_each_failure_exit_code(logged: tuple[Path, Path], tmp_path: Path) -> None:
    state, log = logged
    ok = run(state, "audit", "verify")  # the default log and seal key
    assert ok.returncode == 0, ok.stderr
    assert "ok: 8 records in 1 file(s), 2 seal(s) verified" in ok.stderr
    assert ok.stdout == ""

    lines = log.read_bytes().splitlines()
    edited = lines[2].replace(b"qd-02.pdf", b"qd-09.pdf")
    bad = tmp_path / "edited.jsonl"
    bad.write_bytes(b"\n".join([*lines[:2], edited, *lines[3:]]) + b"\n")
    proc = run(state, "audit", "verify", str(bad))
    assert proc.returncode == 1
    assert f"error: {bad}:3: edited: this line was changed" in proc.stderr
    assert "Traceback" not in proc.stderr

    missing = run(state, "audit", "verify", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 3
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: audit log not found"

    elsewhere = tmp_path / "other-state"
    nokey = run(elsewhere, "audit", "verify", str(log))
    assert nokey.returncode == 5
    assert "no seal key was given" in nokey.stderr and "hint: pass --seal-key" in nokey.stderr
    chain_only = run(elsewhere, "audit", "verify", str(log), "--chain-only")
    assert chain_only.returncode == 0 and "chain only" in chain_only.stderr
    pub = state / "signkit" / "audit-seal.key.pub"
    given = run(elsewhere, "audit", "verify", str(log), "--seal-key", str(pub), "--json")
    assert given.returncode == 0 and json.loads(given.stdout)["seals"] == 2

    # a key nobody trusts sealed it: exit 5
    stranger = run(elsewhere, "audit", "key")
    assert stranger.returncode == 0 and "BEGIN PUBLIC KEY" in stranger.stdout
    other_pub = elsewhere / "signkit" / "audit-seal.key.pub"
    untrusted = run(elsewhere, "audit", "verify", str(log), "--seal-key", str(other_pub))
    assert untrusted.returncode == 5 and "unknown-seal-key" in untrusted.stderr

    # the last run cut off: found against the anchor next to the log
    first_run = lines[: len(lines) // 2]
    log.write_bytes(b"\n".join(first_run) + b"\n")
    cut = run(state, "audit", "verify", "--json")
    assert cut.returncode == 1
    problem = json.loads(cut.stdout)["problem"]
    assert problem["kind"] == "truncated" and problem["line"] == len(first_run) + 1


def test_show_filters_and_exports(logged: tuple[Path, Path]) -> None:
    state, log = logged
    table = run(state, "audit", "show")
    # the table is what was asked for (stdout, without trailing padding); the count on stderr
    assert table.returncode == 0 and table.stderr == "4 record(s)\n"
    lines = table.stdout.splitlines()
    assert lines[0].split() == "time user outcome input output / error signer".split()
    assert len(lines) == 5 and "/inbox/qd-01.pdf" in lines[1]
    assert all(line == line.rstrip() for line in lines)

    def rows(*args: str) -> list[dict[str, str]]:
        proc = run(state, "audit", "show", str(log), "--json", *args)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    assert [r["input"] for r in rows("--outcome", "failed")] == ["/inbox/qd-02.pdf"]
    assert {r["input"] for r in rows("--user", "minh")} == {"/inbox/cv-07.pdf", "/inbox/hd-03.xml"}
    assert [r["input"] for r in rows("--file", "*.xml")] == ["/inbox/hd-03.xml"]
    assert [r["input"] for r in rows("--file", "qd-01")] == ["/inbox/qd-01.pdf"]
    binh = rows("--cert", "binh")
    assert len(binh) == 2 and all(r["signer_subject"].startswith("CN=Tran Thi Binh") for r in binh)
    prefix = b"Le Van".hex()[:12]
    assert {r["os_user"] for r in rows("--cert", prefix)} == {"minh"}
    assert len(rows("--since", "2000-01-01", "--until", "2999-01-01")) == 4
    assert rows("--since", "2999-01-01") == []
    assert rows("--until", "2000-01-01T00:00+07:00") == []
    everything = rows("--all-records")
    assert {r["type"] for r in everything} >= {"run-start", "document-result", "seal"}

    exported = run(state, "audit", "show", "--csv", "--outcome", "signed")
    parsed = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["output"] for r in parsed] == ["/signed/qd-01.pdf", "/signed/cv-07.pdf"]
    assert parsed[0]["os_user"] == "lan" and parsed[0]["token_serial"] == "5401"

    bad = run(state, "audit", "show", "--since", "yesterday")
    assert bad.returncode == 2 and "error: yesterday: --since: not an ISO 8601" in bad.stderr


def test_rotate_then_verify_follows_the_chain(logged: tuple[Path, Path]) -> None:
    state, log = logged
    before = log.read_bytes().splitlines()
    proc = run(state, "audit", "rotate", "--json")
    assert proc.returncode == 0, proc.stderr
    archive = Path(json.loads(proc.stdout)["rotated_to"])
    assert archive.read_bytes().splitlines() == before
    first = json.loads(log.read_bytes().splitlines()[0])
    assert first["type"] == "rotated" and first["previous_file"] == archive.name
    check = run(state, "audit", "verify", "--json")
    assert check.returncode == 0, check.stdout
    assert json.loads(check.stdout)["files"] == [str(archive), str(log)]
    shown = run(state, "audit", "show", "--json")
    assert len(json.loads(shown.stdout)) == 4  # documents from before the rotation too


def test_audit_is_listed_in_help(tmp_path: Path) -> None:
    proc = run(tmp_path, "--help")
    assert proc.returncode == 0 and "audit" in proc.stdout
    sub = run(tmp_path, "audit", "verify", "--help")
    assert "1 tampering found" in sub.stdout and "5 a seal" in sub.stdout


def test_sign_without_seal_key_access_is_a_config_error(tmp_path: Path) -> None:
    key = tmp_path / "seal.key"
    key.write_text("not a key")
    with pytest.raises(Exception) as err:
        AuditLog(tmp_path / "audit.jsonl", AuditSpec(seal_key=key))
    assert "not an unencrypted PEM private key" in str(err.value)
    assert type(err.value).__name__ == "ConfigError"
