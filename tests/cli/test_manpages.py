"""The manual pages the build writes (signkit.cli.manpages, run by setup.py)
say what --help says: every command has its page, every option its entry
with the same text, rendered by groff without a warning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from signkit.cli.manpages import commands, write_manpages
from support.infra import REPO

ENV = {**os.environ, "COLUMNS": "200", "LANG": "C.UTF-8", "LC_ALL": "", "LANGUAGE": ""}
ENTRY = re.compile(r"^  (-\S.*?)(?:\s{2,}(.*))?$")


def _norm(text: str) -> str:
    return " ".join(text.split())


def help_options(path: list[str]) -> dict[str, str]:
    """Option names -> text, from `signkit … --help` as a user reads it."""
    proc = subprocess.run(
        [sys.executable, "-m", "signkit", *path, "--help"],
        capture_output=True, text=True, env=ENV, cwd=REPO, check=True,
    )  # fmt: skip
    lines = proc.stdout.split("Options:\n", 1)[1].splitlines()
    entries: dict[str, list[str]] = {}
    current = None
    for line in lines:
        match = ENTRY.match(line)
        if match:
            current = _norm(match.group(1))
            entries[current] = [match.group(2) or ""]
        elif line.startswith("   ") and current is not None:
            entries[current].append(line)
        else:
            current = None
    return {names: _join(parts) for names, parts in entries.items()}


def _join(parts: list[str]) -> str:
    """Wrapped lines as one text (click wraps after a hyphen, too)."""
    text = ""
    for part in (p.strip() for p in parts):
        text += part if text.endswith("-") or not text else " " + part
    return _norm(text)


def render(page: Path) -> str:
    """The page as man shows it (groff, no hyphenation, long lines)."""
    proc = subprocess.run(
        ["groff", "-man", "-Tutf8", "-rLL=400n", "-rHY=0", "-ww", "-P-cbou", str(page)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", (page, proc.stderr)
    return proc.stdout


def man_options(text: str, names: list[str]) -> dict[str, str]:
    """Option entries of the OPTIONS section; ``names`` tell where a tag ends
    when groff set a short one on the line of its text."""
    section = text.split("\nOPTIONS\n", 1)[1].split("\nEXIT STATUS\n", 1)[0]
    entries: dict[str, list[str]] = {}
    current = None
    for line in section.splitlines():
        if line.startswith("       -"):
            tag = _norm(line)
            current = next((n for n in names if tag == n or tag.startswith(n + " ")), tag)
            entries[current] = [tag[len(current) :]]
        elif line.startswith("              ") and current is not None:
            entries[current].append(line)
    return {names: _norm(" ".join(parts)) for names, parts in entries.items()}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("man")
    write_manpages(directory)
    return directory


def test_every_command_has_a_page_that_agrees_with_its_help(pages: Path) -> None:
    found = commands()
    assert len(found) >= 15
    names = {p.name for p in pages.iterdir()}
    assert names == {"signkit.1", *(f"signkit-{'-'.join(path)}.1" for path, _, _ in found)}
    for path, _command, _ctx in found:
        page = pages / f"signkit-{'-'.join(path)}.1"
        text = render(page)
        assert text.splitlines()[0].startswith(f"SIGNKIT-{'-'.join(path).upper()}(1)")
        expected = help_options(path)
        assert "--help" in " ".join(expected) and len(expected) > 2
        assert man_options(text, list(expected)) == expected, path


def test_the_main_page_lists_every_command_exit_code_and_variable(pages: Path) -> None:
    text = render(pages / "signkit.1")
    for path, _command, _ctx in commands():
        assert f"signkit-{'-'.join(path)}(1)" in text
    for code in ("0", "1", "2", "3", "4", "5", "6", "7", "70", "75"):
        assert re.search(rf"^ {{7}}{code}(\s{{2,}}\S|\n)", text, re.M), code
    for name in ("SIGNKIT_PIN", "SIGNKIT_MODULE", "http_proxy", "JOURNAL_STREAM"):
        assert name in text
    expected = help_options([])
    assert man_options(text, list(expected)) == expected


def test_vietnamese_text_renders(pages: Path) -> None:
    text = render(pages / "signkit-sign-xml.1")
    assert "Kế toán" in text  # an example of the help, through roff's \[uXXXX] glyphs
