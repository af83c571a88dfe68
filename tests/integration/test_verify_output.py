"""`signkit verify` as a person reads it: on a terminal of 80 and 120 columns
(tmux draws the screen, capture-pane reads it), piped, in Vietnamese."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from support.infra import PkiServices
from support.runner import Runner
from support.verifydocs import pyhanko_sign, sample

pytestmark = [pytest.mark.pki]

LEADER_DN = "CN=Trần Thị Bình"
NAME_ORG = "Trần Thị Bình, Ủy ban nhân dân tỉnh Nam Định"


@pytest.fixture
def inbox(tmp_path: Path, pki: PkiServices) -> Path:
    """A folder as a receiving office gets it: a decision signed by the leader
    (time-stamped) then sealed by the organisation, a copy with bytes appended
    after it was signed, a broken file, and a note that is no document."""
    folder = tmp_path / "inbox"
    (folder / "2026").mkdir(parents=True)
    leader = pyhanko_sign(sample(tmp_path), tmp_path / "l.pdf", "leader-vn", field="ND30-Person",
                          timestamp=True)  # fmt: skip
    pyhanko_sign(leader, folder / "qd-112.pdf", "clerk-vn", field="ND30-Org")
    appended = folder / "2026" / "qd-113.pdf"
    appended.write_bytes((folder / "qd-112.pdf").read_bytes() + b"\nsomething added later\n")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really a PDF")
    (folder / "notes.txt").write_text("danh sách văn bản\n", encoding="utf-8")
    return folder


def on_screen(signkit: Runner, args: list[str], *, columns: int, env: dict[str, str]) -> str:
    """What tmux shows after ``signkit ARGS`` ran in a window ``columns`` wide."""
    socket = f"signkit-test-{uuid.uuid4().hex[:8]}"
    channel = f"done-{uuid.uuid4().hex[:8]}"
    tmux = shutil.which("tmux")
    assert tmux is not None, "tmux is not installed"
    environment = signkit.env(env)
    environment.pop("COLUMNS", None)
    exports = " ".join(f"{k}={_quote(v)}" for k, v in environment.items() if k.isidentifier())
    command = (
        f"env -i {exports} {_quote(sys.executable)} -m signkit "
        + " ".join(_quote(a) for a in args)
        + f"; {tmux} -L {socket} wait-for -S {channel}; sleep 600"
    )
    base = [tmux, "-L", socket, "-f", "/dev/null"]
    subprocess.run(
        [*base, "new-session", "-d", "-x", str(columns), "-y", "200", command], check=True
    )
    try:
        subprocess.run([*base, "wait-for", channel], check=True, timeout=120)
        screen = subprocess.run(
            [*base, "capture-pane", "-p", "-S", "0", "-E", "199"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], check=False)
    return "\n".join(line.rstrip() for line in screen.splitlines()).strip("\n")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.mark.parametrize("columns", [80, 120])
def test_rows_fit_the_terminal(
    signkit: Runner, inbox: Path, trust: Path, tmp_path: Path, columns: int
) -> None:
    screen = on_screen(
        signkit,
        ["verify", str(inbox), "-r", "--trust", str(trust), "--no-audit"],
        columns=columns,
        env={"LANG": "C.UTF-8"},
    )
    (tmp_path / f"screen-{columns}.txt").write_text(screen, encoding="utf-8")
    lines = screen.splitlines()
    assert all(len(line) <= columns for line in lines), screen
    # the signer as name and organisation; the full DN only with -v
    assert any(NAME_ORG in line for line in lines), screen
    assert LEADER_DN not in screen, screen
    # file names relative to the folder given, under it
    assert f"{inbox}/" in lines, screen
    assert any(line.strip().endswith("  2026/qd-113.pdf") for line in lines), screen
    # each signature names its field and role
    assert "#1 ND30-Person (leader's signature):" in screen, screen
    assert "#2 ND30-Org (seal):" in screen, screen
    # one time zone for every time: Vietnam's, for the TSA's time too
    offsets = set(re.findall(r"\d\d:\d\d:\d\d([+-]\d\d:\d\d)", screen))
    assert offsets == {"+07:00"}, screen
    # the bytes appended after signing are said, on that file only
    assert screen.count("bytes were appended after the last signed revision") == 1, screen
    # an unreadable file is counted as unreadable, not as failed
    assert re.search(r"^\s*UNREADABLE\s+broken\.pdf", screen, re.M), screen
    assert "2 passed, 0 indeterminate, 0 failed, 1 unreadable (of 3)" in screen, screen
    if columns == 120:
        # a signature's row is one line on a wide terminal
        row = next(line for line in lines if "#2 ND30-Org" in line)
        assert NAME_ORG.split(",")[1].strip() in row, row


def test_piped_output_has_no_padding(signkit: Runner, inbox: Path, trust: Path) -> None:
    proc = signkit("verify", str(inbox), "-r", "--trust", str(trust), "--no-audit")
    assert proc.returncode == 1, proc.stdout
    # the verdicts are what was asked for: on stdout, the diagnostics apart
    assert "PASSED" not in proc.stderr and NAME_ORG not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if line != line.rstrip()], proc.stdout
    # words are separated by two spaces at most, never padded into columns
    body = [line.strip() for line in lines]
    assert not [line for line in body if "   " in line], proc.stdout
    # a signature stays on one line for grep
    assert any(NAME_ORG in line and "#1 ND30-Person" in line for line in lines), proc.stdout


def test_verbose_shows_the_full_dn_and_the_skipped_files(
    signkit: Runner, inbox: Path, trust: Path
) -> None:
    proc = signkit("verify", str(inbox), "-r", "--trust", str(trust), "--no-audit", "-v")
    assert LEADER_DN in proc.stdout, proc.stdout
    assert f"skipped (not a PDF, XML or CMS signature file): {inbox / 'notes.txt'}" in proc.stderr
    quiet = signkit("verify", str(inbox), "-r", "--trust", str(trust), "--no-audit")
    assert "notes.txt" not in quiet.stderr
    as_json = signkit("verify", str(inbox), "-r", "--trust", str(trust), "--no-audit", "--json")
    documents = json.loads(as_json.stdout)["documents"]
    subjects = [
        s["signer_subject"] for d in documents if d["verdict"] for s in d["verdict"]["signatures"]
    ]
    assert any(s.startswith(LEADER_DN) for s in subjects), subjects


def test_timezone_option_moves_every_time(signkit: Runner, inbox: Path, trust: Path) -> None:
    proc = signkit(
        "verify", str(inbox / "qd-112.pdf"), "--trust", str(trust), "--no-audit",
        "--timezone", "UTC",
    )  # fmt: skip
    offsets = set(re.findall(r"\d\d:\d\d:\d\d([+-]\d\d:\d\d)", proc.stdout))
    assert offsets == {"+00:00"}, proc.stdout
    bad = signkit("verify", str(inbox), "--trust", str(trust), "--timezone", "Hà Nội")
    assert bad.returncode == 2 and "unknown time zone" in bad.stderr, bad.stderr


def test_vietnamese_verdicts_carry_the_etsi_code(signkit: Runner, inbox: Path, trust: Path) -> None:
    proc = signkit(
        "verify", str(inbox), "-r", "--trust", str(trust), "--no-audit",
        env={"LANG": "vi_VN.UTF-8"},
    )  # fmt: skip
    assert "HỢP LỆ (PASSED)  qd-112.pdf" in proc.stdout, proc.stdout
    assert "KHÔNG ĐỌC ĐƯỢC  broken.pdf" in proc.stdout, proc.stdout
    assert "(con dấu của cơ quan)" in proc.stdout, proc.stdout
    assert "2 HỢP LỆ, 0 CHƯA XÁC ĐỊNH, 0 KHÔNG HỢP LỆ" in proc.stdout, proc.stdout
    assert "byte được ghi thêm sau phiên bản đã ký cuối cùng" in proc.stdout, proc.stdout


def test_vietnamese_rows_fit_80_columns(
    signkit: Runner, inbox: Path, trust: Path, tmp_path: Path
) -> None:
    """Vietnamese sentences are longer than English ones: on an 80-column
    terminal they wrap too, without splitting the signer's name."""
    screen = on_screen(
        signkit,
        ["verify", str(inbox), "-r", "--trust", str(trust), "--no-audit"],
        columns=80,
        env={"LANG": "vi_VN.UTF-8"},
    )
    (tmp_path / "screen-vi-80.txt").write_text(screen, encoding="utf-8")
    lines = screen.splitlines()
    assert all(len(line) <= 80 for line in lines), screen
    assert any(NAME_ORG in line for line in lines), screen
    assert re.search(r"^\s*HỢP LỆ \(PASSED\)\s+qd-112\.pdf$", screen, re.M), screen
    assert "#2 ND30-Org (con dấu của cơ quan):" in screen, screen
    assert "2 HỢP LỆ, 0 CHƯA XÁC ĐỊNH, 0 KHÔNG HỢP LỆ, không đọc được 1" in screen, screen
