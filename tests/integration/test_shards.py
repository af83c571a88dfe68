"""A run split with --shard K/N, as several hosts or an array job run it: each
document in exactly one part, the same split on every run, the parts'
reports merged into the report of the whole."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from support.infra import FIXTURES, PkiServices, SoftHsm, batch_of
from support.pdfcheck import pdfsig
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

PARTS = 3


def expected_part(path: str) -> int:
    """The split README promises: SHA-256 of the path, first 8 bytes, modulo N."""
    digest = hashlib.sha256(os.path.normpath(path).encode()).digest()
    return int.from_bytes(digest[:8], "big") % PARTS + 1


def inbox_filling_every_part(directory: Path, per_part: int) -> Path:
    """``directory`` with ``per_part`` documents for each part.

    The split hashes the whole path, so it depends on the test's temporary
    directory: twelve names taken in order left a part empty in about one run
    in forty (a flaky test). The names are chosen until every part has its
    share; signkit must still put each in the part its path hashes to.
    """
    directory.mkdir(parents=True)
    sample = FIXTURES / "samples" / "attachment.pdf"
    counts = dict.fromkeys(range(1, PARTS + 1), 0)
    i = 0
    while min(counts.values()) < per_part:
        path = directory / f"d{i:03d}.pdf"
        part = expected_part(str(path))
        if counts[part] < per_part:
            shutil.copy(sample, path)
            counts[part] += 1
        i += 1
    return directory


def test_sign_and_verify_in_shards_then_merge(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    inbox = inbox_filling_every_part(tmp_path / "inbox", 4)
    names = sorted(p.name for p in inbox.iterdir())
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    common = ["--token-label", "signkit-demo", "--trust", str(trust), "--no-audit"]
    parts = tmp_path / "parts"
    parts.mkdir()
    taken: dict[int, set[str]] = {}
    for k in range(1, PARTS + 1):
        proc = signkit(
            "sign", "pdf", str(inbox), "--output-dir", str(tmp_path / "signed"), *common,
            "--shard", f"{k}/{PARTS}", "--report", str(parts / f"sign-{k}.json"), env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = json.loads((parts / f"sign-{k}.json").read_text())
        assert report["shard"] == f"{k}/{PARTS}"
        taken[k] = {Path(d["input"]).name for d in report["documents"]}
        assert {d["status"] for d in report["documents"]} == {"signed"}
    # every document in exactly one part, the part its path hashes to
    assert sorted(n for part in taken.values() for n in part) == names
    for k, part in taken.items():
        assert all(expected_part(str(inbox / n)) == k for n in part)
    assert all(len(part) == 4 for part in taken.values()), taken
    # the same split on another run, the inputs named in another order
    listed = [str(inbox / n) for n in reversed(names)]
    again = signkit(
        "sign", "pdf", *listed, "--output-dir", str(tmp_path / "o2"), *common,
        "--shard", f"2/{PARTS}", "--dry-run", "--json", env=env,
    )  # fmt: skip
    assert {Path(d["input"]).name for d in json.loads(again.stdout)["documents"]} == taken[2]
    for name in names:
        assert "Signature is Valid" in pdfsig(tmp_path / "signed" / name)

    merged = signkit("report", "merge", *[str(parts / f"sign-{k}.json") for k in (3, 1, 2)])
    assert merged.returncode == 0, merged.stderr
    whole = json.loads(merged.stdout)
    assert whole["command"] == "sign pdf" and whole["status"] == "ok" and whole["exit_code"] == 0
    assert whole["totals"]["signed"] == 12 and whole["totals"]["total"] == 12
    assert [p["shard"] for p in whole["parts"]] == ["1/3", "2/3", "3/3"]
    assert sorted(Path(d["input"]).name for d in whole["documents"]) == names
    assert merged.stderr.startswith("3 report(s) merged: 12 document(s) (12 signed), status ok")

    # verification of the signed folder, split the same way, one document spoiled
    signed = tmp_path / "signed"
    spoiled = signed / names[0]
    data = bytearray(spoiled.read_bytes())
    data[data.index(b"/Contents <") - 40] ^= 0x01  # a byte inside the signed range
    spoiled.write_bytes(bytes(data))
    verdicts = tmp_path / "verdicts"
    verdicts.mkdir()
    codes = []
    for k in range(1, PARTS + 1):
        proc = signkit(
            "verify", str(signed), "--trust", str(trust), "--no-audit", "--shard", f"{k}/{PARTS}",
            "--report", str(verdicts / f"{k}.json"),
        )  # fmt: skip
        codes.append(proc.returncode)
    assert sorted(codes) == [0, 0, 1], codes
    target = tmp_path / "verify.json"
    merged = signkit("report", "merge", *map(str, sorted(verdicts.iterdir())), "-o", str(target))
    assert merged.returncode == 1 and merged.stdout == ""  # the whole run's exit code
    whole = json.loads(target.read_text())
    assert whole["verdicts"] == {"PASSED": 11, "INDETERMINATE": 0, "FAILED": 1}
    assert whole["status"] == "failed" and len(whole["documents"]) == 12


def test_merge_refuses_parts_that_do_not_fit(signkit: Runner, tmp_path: Path) -> None:
    def part(name: str, shard: str | None, command: str = "verify") -> Path:
        path = tmp_path / name
        report = {
            "schema_version": 1, "command": command, "shard": shard, "exit_code": 0,
            "status": "ok", "documents": [], "started": "2026-03-12T01:00:00+00:00",
            "finished": "2026-03-12T01:00:01+00:00",
        }  # fmt: skip
        path.write_text(json.dumps(report))
        return path

    one, two, three = part("1.json", "1/3"), part("2.json", "2/3"), part("3.json", "3/3")
    cases = [
        ([one, three], "shard(s) 2/3 missing"),
        ([one, two, three, part("2b.json", "2/3")], "shard 2/3 given twice"),
        ([one, two, part("x.json", "3/4")], "the parts split the documents differently"),
        ([one, two, part("s.json", "3/3", "sign pdf")], "cannot join reports of `verify`"),
        ([one, two, part("whole.json", None)], "a split run (--shard) and of a whole run"),
    ]
    for files, message in cases:
        proc = signkit("report", "merge", *map(str, files))
        assert proc.returncode == 3 and message in proc.stderr, (message, proc.stderr)
        assert proc.stdout == ""
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    proc = signkit("report", "merge", str(one), str(junk))
    assert proc.returncode == 3 and f"error: {junk}: not a JSON report" in proc.stderr
    ok = signkit("report", "merge", str(one), str(two), str(three))
    assert ok.returncode == 0 and json.loads(ok.stdout)["totals"]["total"] == 0


def test_bad_shards_and_empty_parts(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, tmp_path: Path
) -> None:
    one = batch_of(tmp_path / "one", 1)
    for bad in ("0/3", "4/3", "2", "a/b", "1/0"):
        proc = signkit("verify", str(one), "--shard", bad, "--no-audit")
        assert proc.returncode == 2 and "--shard takes K/N" in proc.stderr, (bad, proc.stderr)
    # one document, two parts: one part holds it, the other has nothing to do
    # (a success even with --require-input: the other part has the work)
    doc = one / "d000.pdf"
    empty = 2 if expected_part_of(doc, 2) == 1 else 1
    proc = signkit(
        "verify", str(one), "--shard", f"{empty}/2", "--require-input", "--no-audit", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    assert "falls in shard" in json.loads(proc.stdout)["nothing_to_do"]
    shutil.rmtree(one)


def expected_part_of(path: Path, parts: int) -> int:
    digest = hashlib.sha256(os.path.normpath(str(path)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % parts + 1
