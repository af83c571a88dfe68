"""README's reference and --help agree: every option of every command is
documented in the command's section of README (or in a section all commands
share), every option README names exists, and every preset is listed in
README and in --help."""

from __future__ import annotations

import re

import pytest

from signkit.cli.manpages import commands
from signkit.formats.pdf.presets import PRESETS
from signkit.formats.xml.presets import BUILTIN
from support.infra import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")

# Sections every command's options may be documented in.
SHARED = ["Command line conventions", "Using a real token", "PINs", "Scheduled jobs"]
# The sections of README that document each command.
SECTIONS: dict[str, list[str]] = {
    "sign pdf": ["Signing PDFs in bulk"],
    "sign xml": ["Signing XML in bulk", "Signing PDFs in bulk"],
    "sign cms": ["Signing any file (CAdES)", "Signing PDFs in bulk"],
    "extend": ["Long-term archives: `signkit extend`", "Signing PDFs in bulk"],
    "verify": ["Verifying documents", "Reports for people", "Beyond one machine"],
    "cert check": ["Checking certificates"],
    "token": ["Using a real token"],
    "audit": ["Audit log"],
    "trust": ["Trust bundles"],
    "report": ["Beyond one machine"],
    "completion": ["Command line conventions"],
}


def section(title: str) -> str:
    """The text under a heading, down to the next heading of its level or
    above (a shell comment in a code block is not a heading)."""
    lines = README.splitlines(keepends=True)
    fenced = False
    start = level = None
    for number, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) (.*)", line)
        if heading is None:
            continue
        depth = len(heading.group(1))
        if start is None and heading.group(2).rstrip() == title:
            start, level = number + 1, depth
        elif start is not None and level is not None and depth <= level:
            return "".join(lines[start:number])
    assert start is not None, f"README has no section {title!r}"
    return "".join(lines[start:])


def long_options(command: object) -> set[str]:
    names: set[str] = set()
    for param in command.params:  # type: ignore[attr-defined]
        if getattr(param, "param_type_name", "") == "option":
            names |= {o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")}
    return names - {"--help"}


@pytest.mark.parametrize("path", [p for p, _, _ in commands()], ids=" ".join)
def test_every_option_is_documented_where_its_command_is(path: list[str]) -> None:
    (command,) = [c for p, c, _ in commands() if p == path]
    key = " ".join(path) if " ".join(path) in SECTIONS else path[0]
    text = "".join(section(t) for t in [*SECTIONS[key], *SHARED])
    documented = set(OPTION.findall(text))
    missing = sorted(long_options(command) - documented)
    assert not missing, f"signkit {' '.join(path)}: not in README's {SECTIONS[key]}: {missing}"


def test_every_option_readme_names_exists() -> None:
    known = {"--version", "--lang", "--help"}
    for _path, command, _ctx in commands():
        known |= long_options(command)
    named = set(OPTION.findall(README))
    # options of other programs README quotes (qpdf, xmlsec1, mypy, parallel, useradd,
    # systemctl, LibreOffice, the benchmarks), and --pin, named to say there is none
    others = {"--check", "--sign", "--strict", "--sshlogin", "--workdir", "--array", "--system",
              "--home-dir", "--shell", "--now", "--quick", "--pin", "--headless"}  # fmt: skip
    unknown = sorted(named - known - others)
    assert not unknown, f"README names options no command has: {unknown}"


def test_every_preset_is_listed_in_readme_and_help() -> None:
    pdf_help = next(
        param.help
        for path, command, _ctx in commands()
        if path == ["sign", "pdf"]
        for param in command.params
        if param.name == "preset"
    )
    xml_help = next(
        param.help
        for path, command, _ctx in commands()
        if path == ["sign", "xml"]
        for param in command.params
        if param.name == "preset"
    )
    for name in PRESETS:
        assert f"`{name}`" in section("Signing PDFs in bulk"), name
        assert name in pdf_help, name
    for name in BUILTIN:
        assert f"`{name}`" in section("Signing XML in bulk"), name
        assert name in xml_help, name
