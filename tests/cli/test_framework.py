"""The command line itself, as a user meets it: usage errors and their exit
code, "did you mean", help and errors in Vietnamese, shell completion, and
the line a bug prints. No token is needed here."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from signkit.cli import framework, run
from signkit.cli.app import COMMANDS, app
from support.infra import FIXTURES

REPO = Path(__file__).resolve().parents[2]
ENGLISH = {"LANG": "C.UTF-8", "LC_ALL": "", "LC_MESSAGES": "", "LANGUAGE": ""}


def signkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "signkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **ENGLISH, **(env or {})},
        cwd=REPO,
        check=False,
        timeout=60,
    )


def leaf_commands() -> list[tuple[str, typer.Context]]:
    """Every command under `signkit`, with a context to convert its values in."""
    root = typer.main.get_command(app)
    root_ctx = typer.Context(root, info_name="signkit")
    found = []
    for name in COMMANDS:
        command = root.get_command(root_ctx, name)  # type: ignore[attr-defined]
        children = (
            [command.get_command(root_ctx, n) for n in command.list_commands(root_ctx)]
            if hasattr(command, "list_commands")
            else [command]
        )
        found += [(f"{name} {c.name}", typer.Context(c, parent=root_ctx)) for c in children]
    return found


def test_every_parameter_is_converted_by_signkit() -> None:
    """Each option of each command has signkit's conversion, and its default
    converts: a Typer upgrade that changes its parameter classes, or an option
    of a type the framework does not know, fails here rather than in use."""
    commands = leaf_commands()
    assert len(commands) >= 12
    for name, ctx in commands:
        for param in ctx.command.params:
            assert isinstance(param, framework.Option | framework.Argument), (name, param.name)
            framework.convert(param, ctx, param.default)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["verify", "x.pdf", "--jobs", "0"],
            "Invalid value for '--jobs': 0 is not in the range x>=1.",
        ),
        (
            ["verify", "x.pdf", "--revocation", "sof"],
            "'sof' is not one of 'hard', 'soft', 'off'. Did you mean 'soft'?",
        ),
        (["verify", "x.pdf", "--doc-timeout", "soon"], "'soon' is not a valid number."),
        (["sign", "pdf", "--manifest", "/"], "Invalid value for '--manifest': / is a directory."),
        (
            ["sign", "pdf", "x.pdf", "--image", "/nonexistent/seal.png"],
            "/nonexistent/seal.png does not exist.",
        ),
        (["verify", "x.pdf", "--levle", "B-B"], "No such option: --levle"),
        (["completion"], "Missing argument 'SHELL'."),
    ],
)
def test_usage_errors_exit_2_with_the_usage_line(args: list[str], message: str) -> None:
    proc = signkit(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("Usage: signkit ")
    assert f"Error: {message}" in proc.stderr or message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_a_mistyped_command_gets_a_suggestion() -> None:
    proc = signkit("sing", "pdf", "x.pdf")
    assert proc.returncode == 2
    assert "Error: No such command 'sing'. Did you mean 'sign'?" in proc.stderr
    proc = signkit("cert", "chek")
    assert proc.returncode == 2 and "Did you mean 'check'?" in proc.stderr


def test_no_command_prints_the_help_and_exits_2() -> None:
    proc = signkit()
    assert proc.returncode == 2
    assert "Commands:" in proc.stderr and "Exit codes:" in proc.stderr and proc.stdout == ""


def test_usage_errors_and_help_in_vietnamese() -> None:
    """Regression: with --lang vi (or a vi_* locale) the framework's own
    texts (usage line, "Error", "No such option", help headings) were English."""
    proc = signkit("--lang", "vi", "sign", "pdf", "x.pdf", "--levle", "B-B")
    assert proc.returncode == 2
    assert proc.stderr.startswith("Cách dùng: signkit sign pdf [TÙY CHỌN] [INPUT]...")
    assert "Lỗi: Không có tùy chọn --levle" in proc.stderr
    group = signkit("--lang", "vi", "trust", "--bogus")
    assert group.stderr.startswith("Cách dùng: signkit trust [TÙY CHỌN] LỆNH [THAM SỐ]...")
    proc = signkit("sing", env={"LANG": "vi_VN.UTF-8"})
    assert "Không có lệnh 'sing'. Có phải ý bạn là 'sign'?" in proc.stderr
    proc = signkit("verify", "x.pdf", "--jobs", "0", env={"LANG": "vi_VN.UTF-8"})
    assert "Giá trị không hợp lệ cho '--jobs': 0 nằm ngoài khoảng cho phép x>=1." in proc.stderr
    helped = signkit("--lang", "vi", "sign", "pdf", "--help")
    assert helped.returncode == 0
    assert helped.stdout.startswith("Cách dùng: signkit sign pdf")
    assert "Tùy chọn:" in helped.stdout and "Hiện hướng dẫn này rồi thoát." in helped.stdout
    assert "[mặc định: B-B]" in helped.stdout
    root = signkit("--lang", "vi", "--help")
    assert "Lệnh:" in root.stdout and "Mã thoát:" in root.stdout


def test_a_bug_while_reading_options_is_exit_70_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Regression: an exception raised while the options were read (outside a
    command's own handler) ended in a Python traceback and exit 1. The bug is
    injected (nothing in signkit raises there on purpose)."""
    from signkit.cli import profiles

    def broken(*_args: object, **_kw: object) -> None:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(profiles, "load_config", broken)
    config = tmp_path / "c.toml"
    config.write_text("", encoding="utf-8")
    assert run(["verify", "x.pdf", "--config", str(config)]) == 70
    err = capsys.readouterr().err
    assert "internal error (RuntimeError); run again with --debug" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert run(["verify", "x.pdf", "--config", str(config), "--debug"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_the_test_runner_drives_the_same_application() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("signkit ")
    result = CliRunner().invoke(app, ["verify", "--help"])
    assert result.exit_code == 0 and "--report-format" in result.output


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("signkit sign p", {"pdf"}),
        ("signkit sign pdf --lev", {"--level"}),
        ("signkit sign pdf --level ", {"B-B", "B-T", "B-LT", "B-LTA"}),
        ("signkit verify --revocation ", {"hard", "soft", "off"}),
        ("signkit au", {"audit"}),
    ],
)
def test_bash_completes_commands_options_and_choices(words: str, expected: set[str]) -> None:
    """What the script of `signkit completion bash` asks at each TAB."""
    env = {
        "_SIGNKIT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    proc = signkit(env=env)
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == expected


def test_library_warnings_reach_only_debug_runs() -> None:
    """Regression: pyHanko's import printed cryptography's DSA deprecation
    warning (two lines of Python) above the verdicts and errors of every run
    that loaded the PDF stack, in the clerk's terminal and in cron mail."""
    sample = FIXTURES / "samples" / "attachment.pdf"
    proc = signkit("verify", str(sample), "--no-audit", "--revocation", "off", "--jobs", "1")
    assert proc.returncode == 1, proc.stderr  # a PDF without signatures: FAILED
    assert "Warning" not in proc.stderr and "warnings.warn" not in proc.stderr


@dataclass(frozen=True, kw_only=True)
class _Inner:
    colour: Annotated[str, typer.Option("--colour")] = "red"


@dataclass(frozen=True, kw_only=True)
class _Outer:
    inner: _Inner
    size: Annotated[int, typer.Option("--size")] = 1


def test_a_group_of_groups_is_spread_into_options_and_built_back() -> None:
    """`sign pdf` and `sign xml` take the groups they share as one group
    (SignRun): its groups' options are the command's own options, in their
    order, and the command receives the groups built back."""
    seen: list[_Outer] = []
    demo = typer.Typer()

    @demo.command()
    @framework.grouped
    def main(*, outer: _Outer, last: Annotated[bool, typer.Option("--last")] = False) -> None:
        seen.append(outer)

    result = CliRunner().invoke(demo, ["--colour", "blue", "--size", "3"])
    assert result.exit_code == 0, result.output
    assert seen == [_Outer(inner=_Inner(colour="blue"), size=3)]
    shown = CliRunner().invoke(demo, ["--help"]).output
    assert shown.index("--colour") < shown.index("--size") < shown.index("--last")
