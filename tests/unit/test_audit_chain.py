"""The audit chain against tampering: every edit, deletion, insertion, swap and
truncation of a sealed log of 70+ records is found, at the right line.

No token, no network: the log is written by the real AuditLog with a seal key
in the test's directory, then altered byte for byte as an attacker with write
access to the file (but not the seal key) would.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from signkit.audit.log import GENESIS, AuditLog, AuditSpec, line_hash
from signkit.audit.seal import canonical, load_or_create_seal_key, load_public_keys
from signkit.audit.verify import VerifyReport, verify_log
from signkit.errors import ConfigError, ExitCode

RUNS = 6
DOCS = 4


def write_log(base: Path, *, runs: int = RUNS) -> tuple[Path, Path, Path]:
    """A log of ``runs`` sealed runs shaped like signing runs; (log, anchor, key)."""
    log, anchor, key = base / "audit.jsonl", base / "anchor.jsonl", base / "seal.key"
    for run in range(runs):
        audit = AuditLog(log, AuditSpec(seal_key=key, anchor=anchor))
        audit.add(
            {
                "type": "run-start",
                "command": "sign pdf",
                "options": ["sign", "pdf", f"in/{run}"],
                "os_user": f"clerk{run % 2}",
                "signer": {"subject": "CN=Nguyễn Văn A", "sha256": "ab" * 32},
                "token": {"label": "VNPT-CA", "serial": "1234"},
            }
        )
        audit.commit()
        for doc in range(DOCS):
            audit.add(
                {
                    "type": "document-intent",
                    "doc": doc,
                    "input": f"in/{run}/d{doc}.pdf",
                    "size_before": 1000 + doc,
                    "sha256_before": hashlib.sha256(f"{run}-{doc}".encode()).hexdigest(),
                }
            )
        audit.commit()
        for doc in range(DOCS):
            audit.add(
                {
                    "type": "document-result",
                    "doc": doc,
                    "status": "signed" if doc else "failed",
                    "input": f"in/{run}/d{doc}.pdf",
                    "output": f"out/{run}/d{doc}.pdf",
                    "sha256_after": hashlib.sha256(f"after-{run}-{doc}".encode()).hexdigest(),
                    "error": None if doc else "d0.pdf: not a PDF",
                }
            )
        audit.add({"type": "run-end", "totals": {"signed": DOCS - 1, "failed": 1}})
        audit.close()
    return log, anchor, key


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], bytes, dict[str, Any]]:
    base = tmp_path_factory.mktemp("audit")
    log, anchor, key = write_log(base)
    lines = log.read_bytes().splitlines()
    assert len(lines) >= 50
    return lines, anchor.read_bytes(), load_public_keys([key])


def check(
    tmp_path: Path,
    lines: list[bytes],
    anchor: bytes | None,
    keys: dict[str, Any],
    tail: bytes = b"",
) -> VerifyReport:
    log = tmp_path / "tampered.jsonl"
    log.write_bytes(b"".join(line + b"\n" for line in lines) + tail)
    anchor_path = None
    if anchor is not None:
        anchor_path = tmp_path / "anchor.jsonl"
        anchor_path.write_bytes(anchor)
    return verify_log(log, seal_keys=keys, anchor=anchor_path)


def changed(value: Any) -> Any:
    """A different value of the same shape (what an editor of the file would write)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1:] != "0" else "1") if value else "x"
    if value is None:
        return "x"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        first = sorted(value)[0]
        return {**value, first: changed(value[first])}
    raise AssertionError(type(value))


def test_intact_log_verifies(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines, anchor, keys = sealed
    report = check(tmp_path, lines, anchor, keys)
    assert report.exit_code == ExitCode.OK, report.problem
    assert report.problem is None and report.key_problem is None and report.notes == []
    assert report.records == len(lines) and report.sealed_through == len(lines)
    # every commit is sealed: 3 commits per run
    assert report.seals == RUNS * 3 and report.anchor_checked == RUNS


def test_every_field_edit_of_every_record_is_found_at_its_line(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines, anchor, keys = sealed
    cases = 0
    missed_without_anchor = []
    for i, line in enumerate(lines):
        record = json.loads(line)
        for field in sorted(record):
            edited = copy.deepcopy(record)
            edited[field] = changed(record[field])
            tampered = [*lines[:i], canonical(edited), *lines[i + 1 :]]
            report = check(tmp_path, tampered, anchor, keys)
            assert report.problem is not None, (i, field)
            assert (report.problem.line, report.problem.kind) == (i + 1, "edited"), (
                i,
                field,
                report.problem,
            )
            assert report.exit_code == ExitCode.DOCUMENTS_FAILED
            without = check(tmp_path, tampered, None, keys)
            if without.problem is None or without.problem.line != i + 1:
                missed_without_anchor.append((i, field, without.problem))
            cases += 1
    assert cases > 400
    # Only the anchor sees the final seal turned into some other record: the
    # log then ends in a record nobody sealed, reported at that very line.
    assert all(p is not None and p.kind == "unsealed" for _i, _f, p in missed_without_anchor)
    assert {(i, f) for i, f, _p in missed_without_anchor} <= {(len(lines) - 1, "type")}


def test_edits_with_the_chain_rebuilt_are_caught_by_the_next_seal(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An attacker who recomputes every later `prev` still cannot re-sign the seals."""
    lines, _anchor, keys = sealed
    seals = [i for i, line in enumerate(lines) if json.loads(line)["type"] == "seal"]
    cases = 0
    for i, line in enumerate(lines):
        record = json.loads(line)
        for field in sorted(set(record) - {"seq", "prev"}):
            edited = copy.deepcopy(record)
            edited[field] = changed(record[field])
            tampered = rechain([*lines[:i], canonical(edited), *lines[i + 1 :]], start=i)
            report = check(tmp_path, tampered, None, keys)
            assert report.problem is not None, (i, field)
            # A seal turned into another record is no seal: the next one
            # (or, after the last, the unsealed end) gives it away.
            unsealed = field == "type" and i in seals
            next_seal = next((s for s in seals if s > i or (s == i and not unsealed)), None)
            previous_seal = max([s for s in seals if s < i], default=-1)
            if next_seal is None:
                # everything since the previous seal is now unsealed
                assert (report.problem.line, report.problem.kind) == (
                    previous_seal + 2,
                    "unsealed",
                )
                continue
            assert (report.problem.line, report.problem.kind) == (next_seal + 1, "edited")
            assert previous_seal < i <= next_seal
            cases += 1
    assert cases > 300


def rechain(lines: list[bytes], *, start: int) -> list[bytes]:
    """Recompute `prev` from line ``start`` + 1 on, as an attacker without the key can."""
    out = list(lines[: start + 1])
    for line in lines[start + 1 :]:
        record = json.loads(line)
        record["prev"] = line_hash(out[-1])
        out.append(canonical(record))
    return out


def test_every_deletion_is_found(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines, anchor, keys = sealed
    for i in range(len(lines)):
        report = check(tmp_path, [*lines[:i], *lines[i + 1 :]], anchor, keys)
        assert report.problem is not None, i
        expected = "truncated" if i == len(lines) - 1 else "deleted"
        assert (report.problem.line, report.problem.kind) == (i + 1, expected), (i, report.problem)


def test_every_insertion_is_found(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines, anchor, keys = sealed
    for i in range(len(lines) + 1):
        prev = line_hash(lines[i - 1]) if i else GENESIS
        forged = canonical(
            {
                "seq": i + 1,
                "prev": prev,
                "run": "forged",
                "type": "document-result",
                "status": "signed",
                "input": "in/forged.pdf",
                "time": "2026-03-12T09:41:07.000+07:00",
            }
        )
        candidates = [forged]
        if i:
            candidates.append(lines[i - 1])  # a copy of the line before
        if i + 1 < len(lines):
            candidates.append(lines[i + 1])  # a copy of a later line
        for extra in candidates:
            report = check(tmp_path, [*lines[:i], extra, *lines[i:]], anchor, keys)
            assert report.problem is not None, (i, extra)
            # appended after the last seal: unsealed, or a copy of the seal
            kinds = {"inserted"} if i < len(lines) else {"unsealed", "inserted"}
            assert (report.problem.line, report.problem.kind in kinds) == (i + 1, True), (
                i,
                extra,
                report.problem,
            )


def test_every_swap_of_neighbours_is_found(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines, anchor, keys = sealed
    for i in range(len(lines) - 1):
        swapped = [*lines[:i], lines[i + 1], lines[i], *lines[i + 2 :]]
        report = check(tmp_path, swapped, anchor, keys)
        assert report.problem is not None, i
        assert (report.problem.line, report.problem.kind) == (i + 1, "reordered"), (
            i,
            report.problem,
        )


def test_every_truncation_is_found_against_the_anchor(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines, anchor, keys = sealed
    for keep in range(len(lines)):
        # at a line boundary, and in the middle of the next line
        for tail in (b"", lines[keep][: len(lines[keep]) // 2]):
            report = check(tmp_path, lines[:keep], anchor, keys, tail=tail)
            assert report.problem is not None, keep
            assert (report.problem.line, report.problem.kind) == (keep + 1, "truncated"), (
                keep,
                report.problem,
            )
        # Without the anchor, a cut inside a commit leaves unsealed records
        # (found); a cut right after a seal leaves a valid shorter log: that is
        # why the anchor exists.
        alone = check(tmp_path, lines[:keep], None, keys)
        ends_in_seal = keep == 0 or json.loads(lines[keep - 1])["type"] == "seal"
        assert (alone.problem is None) == ends_in_seal, (keep, alone.problem)


def forge(lines: list[bytes], start: int, key_path: Path, edit: bool = True) -> list[bytes]:
    """The log rebuilt from line ``start`` on and re-sealed with another key."""
    forged_key = load_or_create_seal_key(key_path)
    out = list(lines[:start])
    for n, line in enumerate(lines[start:]):
        record = json.loads(line)
        if n == 0 and edit:
            record["input"] = "in/other.pdf"
        record["prev"] = line_hash(out[-1]) if out else record["prev"]
        if record["type"] == "seal":
            record["key"] = forged_key.fingerprint
            record["public_key"] = __import__("base64").b64encode(forged_key.raw_public).decode()
            record.pop("sig")
            record["sig"] = forged_key.sign(record)
        out.append(canonical(record))
    return out


def test_seals_forged_after_trusted_ones_are_tampering(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A forger who rebuilds from line 4 and re-seals with their own key, after
    seals by the trusted key: tampering (exit 1), found at the first forged seal.
    Regression: this was 'unknown seal key' (exit 5)."""
    lines, _anchor, keys = sealed
    first_seal = next(i for i, line in enumerate(lines) if json.loads(line)["type"] == "seal")
    assert first_seal < 3  # a trusted seal precedes the edit
    report = check(tmp_path, forge(lines, 3, tmp_path / "forger.key"), None, keys)
    assert report.problem is not None and report.problem.kind == "forged-seal"
    assert report.exit_code == ExitCode.DOCUMENTS_FAILED


def test_a_log_sealed_by_an_untrusted_key_only_is_a_key_problem(sealed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Every seal by a key the verifier was not given: a key problem (exit 5),
    never a clean bill (0)."""
    lines, _anchor, keys = sealed
    report = check(tmp_path, forge(lines, 0, tmp_path / "other.key", edit=False), None, keys)
    assert report.problem is None and report.key_problem is not None
    assert report.key_problem.kind == "unknown-seal-key" and report.exit_code == ExitCode.TRUST


def test_torn_last_line_is_reported_then_marked_and_chained_over(tmp_path: Path) -> None:
    log, anchor, key = write_log(tmp_path, runs=1)
    keys = load_public_keys([key])
    with log.open("ab") as fh:
        fh.write(b'{"seq":14,"prev":"ab')  # a crash in the middle of a write
    report = verify_log(log, seal_keys=keys, anchor=anchor)
    assert report.exit_code == ExitCode.OK and report.problem is None
    assert any("torn last line" in n for n in report.notes)
    audit = AuditLog(log, AuditSpec(seal_key=key, anchor=anchor))
    audit.add({"type": "run-start"})
    audit.close()
    raw = log.read_bytes().splitlines()
    assert raw[13] == b'{"seq":14,"prev":"ab'  # kept, ended, chained over
    records = [json.loads(x) for x in raw[:13] + raw[14:]]
    torn = [r for r in records if r.get("type") == "torn-line"]
    assert len(torn) == 1 and torn[0]["torn_bytes"] == 20
    report = verify_log(log, seal_keys=keys, anchor=anchor)
    assert report.exit_code == ExitCode.OK, report.problem
    assert any("marked by the next run" in n for n in report.notes)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert records[13]["prev"] == line_hash(raw[13])


class CutAfter:
    """os.write that stops for good after ``budget`` bytes: a kill -9 in a long write."""

    def __init__(self, budget: int) -> None:
        self.left = budget

    def __call__(self, fd: int, data: bytes | memoryview) -> int:
        if self.left <= 0:
            raise SystemExit("killed")  # the process is gone: nothing after this runs
        n = min(len(data), self.left)
        self.left -= n
        return os.write(fd, data[:n])


@pytest.mark.parametrize("cut", ["inside-a-line", "between-lines"])
def test_a_commit_cut_by_a_crash_then_marked(tmp_path: Path, cut: str) -> None:
    """A crash can cut one commit's write (several lines) anywhere. Cut inside a
    line, its complete lines end in the torn one: a note (regression: that was
    "unsealed", tampering). Cut exactly between lines, nothing tells it from
    records added without the seal key: "unsealed". Either way the next run
    marks or seals over it and the log verifies."""
    log, anchor, key = write_log(tmp_path, runs=1)
    keys = load_public_keys([key])
    size = log.stat().st_size
    records = [{"type": "document-intent", "doc": i, "input": f"in/x{i}.pdf"} for i in range(6)]
    # The same commit on a copy of the log gives the exact line lengths.
    twin = tmp_path / "twin.jsonl"
    twin.write_bytes(log.read_bytes())
    probe = AuditLog(twin, AuditSpec(seal_key=key, anchor=tmp_path / "twin.anchor"))
    for r in records:
        probe.add(r)
    probe.commit()
    probe.discard()
    lengths = [len(x) + 1 for x in twin.read_bytes()[size:].splitlines()]
    budget = sum(lengths[:3]) + (17 if cut == "inside-a-line" else 0)
    audit = AuditLog(log, AuditSpec(seal_key=key, anchor=anchor), write=CutAfter(budget))
    for r in records:
        audit.add(r)
    with pytest.raises(SystemExit):
        audit.commit()
    assert log.stat().st_size == size + budget
    report = verify_log(log, seal_keys=keys, anchor=anchor)
    if cut == "inside-a-line":
        assert report.problem is None and report.exit_code == ExitCode.OK, report.problem
        assert any("a commit cut by a crash" in n for n in report.notes), report.notes
    else:
        assert report.problem is not None and report.problem.kind == "unsealed"
    again = AuditLog(log, AuditSpec(seal_key=key, anchor=anchor))
    again.add({"type": "run-start"})
    again.close()
    report = verify_log(log, seal_keys=keys, anchor=anchor)
    assert report.problem is None and report.exit_code == ExitCode.OK, report.problem


def test_rotation_keeps_one_chain_across_files(tmp_path: Path) -> None:
    key, anchor = tmp_path / "seal.key", tmp_path / "anchor"
    log = tmp_path / "audit.jsonl"
    for n in range(5):
        audit = AuditLog(log, AuditSpec(seal_key=key, anchor=anchor, max_bytes=1500))
        audit.add({"type": "run-start", "n": n})
        audit.commit()
        audit.add({"type": "run-end", "n": n})
        audit.close()
    audit = AuditLog(log, AuditSpec(seal_key=key, anchor=anchor))
    archive = audit.rotate()
    audit.close()
    keys = load_public_keys([key])
    report = verify_log(log, seal_keys=keys, anchor=anchor)
    assert report.exit_code == ExitCode.OK, report.problem
    assert len(report.files) >= 3 and str(archive) in report.files
    first = json.loads(log.read_bytes().splitlines()[0])
    last_old = archive.read_bytes().splitlines()[-1]
    assert first["type"] == "rotated" and first["prev"] == line_hash(last_old)
    assert first["seq"] == json.loads(last_old)["seq"] + 1
    # deleting an old file breaks the chain where the next one names it
    victim = Path(report.files[1])
    victim.unlink()
    report = verify_log(log, seal_keys=keys, anchor=anchor)
    assert report.problem is not None and report.problem.kind == "missing-file"
    assert report.problem.file == report.files[0] and report.problem.line == 1


def test_two_writers_at_once_never_fork_or_interleave(tmp_path: Path) -> None:
    key, log = tmp_path / "seal.key", tmp_path / "audit.jsonl"
    per_writer, writers = 200, 4

    def write(name: str) -> None:
        audit = AuditLog(log, AuditSpec(seal_key=key, anchor=tmp_path / "anchor"))
        for n in range(per_writer):
            audit.add({"type": "document-result", "writer": name, "n": n, "pad": "x" * (n % 97)})
            if n % 7 == 0:
                audit.commit()
        audit.close()

    threads = [threading.Thread(target=write, args=(f"w{k}",)) for k in range(writers)]
    pids = []
    for k in range(2):  # two processes as well as threads
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                write(f"p{k}")
            finally:
                os._exit(0)
        pids.append(pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    report = verify_log(log, seal_keys=load_public_keys([key]), anchor=tmp_path / "anchor")
    assert report.exit_code == ExitCode.OK, report.problem
    records = [json.loads(x) for x in log.read_bytes().splitlines()]
    got = {(r["writer"], r["n"]) for r in records if r["type"] == "document-result"}
    names = [f"w{k}" for k in range(writers)] + ["p0", "p1"]
    assert got == {(w, n) for w in names for n in range(per_writer)}
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_an_unreachable_tsa_is_recorded_and_warned_not_fatal(tmp_path: Path) -> None:
    from signkit.pki.timestamps import TsaSpec

    warnings: list[str] = []
    key, log = tmp_path / "seal.key", tmp_path / "audit.jsonl"
    spec = AuditSpec(seal_key=key, tsa=TsaSpec(url="http://127.0.0.1:9/tsa", timeout=2))
    audit = AuditLog(log, spec, warn=warnings.append)
    audit.add({"type": "run-start"})
    audit.close()
    records = [json.loads(x) for x in log.read_bytes().splitlines()]
    assert [r["type"] for r in records] == ["run-start", "seal", "seal-timestamp", "seal"]
    assert "TSA unreachable" in records[2]["error"] and "token" not in records[2]
    assert records[2]["covers_seq"] == 2 and records[2]["covers_sha256"] == line_hash(
        log.read_bytes().splitlines()[1]
    )
    assert warnings and "not time-stamped" in warnings[0]
    report = verify_log(
        log, seal_keys=load_public_keys([key]), anchor=tmp_path / "audit.jsonl.anchor"
    )
    assert report.exit_code == ExitCode.OK and report.timestamps == []


@pytest.mark.parametrize("written", ["seal.key", "seal.key.pub"])
def test_the_seal_key_is_never_written_through_a_planted_temp_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    """The seal key and its public half are written aside first, under a name
    made for them: never through a symlink planted at that name (which would
    put the private key, or overwrite a file, where the link points). A name
    already taken is a clear error naming the file."""
    monkeypatch.setattr("secrets.token_hex", lambda _n=None: "planted")
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "elsewhere"
    (state / f".{written}.planted.tmp").symlink_to(elsewhere)
    with pytest.raises(ConfigError) as raised:
        load_or_create_seal_key(state / "seal.key")
    assert not elsewhere.exists()
    assert str(state / written) in str(raised.value)
