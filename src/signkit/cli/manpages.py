"""Manual pages from the command line itself: signkit(1) and one page per
command (signkit-sign-pdf(1), …), written by the build (setup.py) from the
same declarations that --help prints, so the two cannot drift apart.

    python -m signkit.cli.manpages DIRECTORY     # write the pages there
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signkit import __version__
from signkit.errors import EXIT_CODE_TABLE

SECTION = "1"

ENVIRONMENT = (
    ("SIGNKIT_PIN", "The PIN for unattended runs; removed from the environment at start-up."),
    ("SIGNKIT_MODULE", "The PKCS#11 module, as --module."),
    ("SIGNKIT_PROFILE", "A profile of the configuration, as --profile."),
    ("SIGNKIT_CONFIG", "The configuration file, as --config."),
    ("SIGNKIT_TSA_PASSWORD", "The time-stamping authority's password, as --tsa-password-file."),
    ("SIGNKIT_PDF_PASSWORD", "The password of encrypted PDFs, as --password-file."),
    (
        "http_proxy, https_proxy, no_proxy",
        "The proxy of OCSP, CRL, AIA and time-stamp requests, and the hosts reached without it.",
    ),
    (
        "JOURNAL_STREAM",
        "Set by systemd when stderr is the journal: stderr lines then carry syslog priorities.",
    ),
    ("XDG_STATE_HOME", "Where the audit log, its seal key and the PIN guard live (signkit/)."),
    ("XDG_CONFIG_HOME", "Where the user's configuration and trust bundles live (signkit/)."),
    ("LANG, LC_ALL, LC_MESSAGES", "The language of messages (vi_* for Vietnamese)."),
)


def _escape(text: str) -> str:
    """Text safe in a roff line: backslashes, hyphens as minus signs (options
    stay copyable), characters beyond ASCII as named glyphs, and a leading
    dot or quote."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(ch if ord(ch) < 128 else f"\\[u{ord(ch):04X}]" for ch in text)
    return "\\&" + text if text.startswith((".", "'")) else text


def _paragraphs(text: str) -> Iterator[str]:
    """click's help text: paragraphs, and \\b blocks kept line by line."""
    block: list[str] = []
    keep = False
    for line in [*text.splitlines(), ""]:
        if line.strip() == "\b":
            keep = True
            continue
        if not line.strip():
            if block:
                yield ("\n.br\n" if keep else " ").join(
                    _escape(b.strip()) if not keep else _escape(b) for b in block
                )
            block, keep = [], False
            continue
        block.append(line)


def _options(ctx: Any) -> list[tuple[str, str]]:
    """(term, help) of each option, as --help shows them (the same records)."""
    rows = []
    for param in ctx.command.get_params(ctx):
        if getattr(param, "param_type_name", "") != "option" or param.hidden:
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            names, help_text = record
            rows.append((f"\\fB{_escape(names)}\\fR", help_text))
    return rows


def _page(name: str, summary: str, body: list[str]) -> str:
    date = datetime.fromtimestamp(_build_time(), UTC).strftime("%Y-%m-%d")
    title = name.upper()
    head = [
        f'.TH "{title}" "{SECTION}" "{date}" "signkit {__version__}" "signkit manual"',
        ".SH NAME",
        f"{_escape(name)} \\- {_escape(summary)}",
    ]
    return "\n".join(head + body) + "\n"


def _build_time() -> float:
    """SOURCE_DATE_EPOCH when the build sets it (reproducible pages), else now."""
    import os

    value = os.environ.get("SOURCE_DATE_EPOCH")
    return float(value) if value and value.isdigit() else datetime.now(UTC).timestamp()


def _exit_status() -> list[str]:
    lines = [".SH EXIT STATUS"]
    for code, text in EXIT_CODE_TABLE:
        lines += [".TP", f"\\fB{code}\\fR", _escape(text)]
    lines += [
        ".TP",
        "\\fB129\\fR, \\fB130\\fR, \\fB143\\fR",
        "stopped by SIGHUP, SIGINT or SIGTERM",
    ]
    return lines


def _leaf_page(path: list[str], command: Any, ctx: Any) -> str:
    usage = " ".join(command.collect_usage_pieces(ctx))
    help_text = command.help or ""
    summary = command.get_short_help_str(limit=80).rstrip(".")
    body = [
        ".SH SYNOPSIS",
        f"\\fBsignkit {' '.join(path)}\\fR {_escape(usage)}",
        ".SH DESCRIPTION",
    ]
    for paragraph in _paragraphs(help_text):
        body += [".PP", paragraph]
    body.append(".SH OPTIONS")
    for term, text in _options(ctx):
        body += [".TP", term, _escape(text)]
    body += _exit_status()
    body += [".SH SEE ALSO", "\\fBsignkit\\fR(1)"]
    return _page("signkit-" + "-".join(path), summary, body)


def commands() -> list[tuple[list[str], Any, Any]]:
    """(path, click command, its context) of every command under `signkit`."""
    import typer

    from .app import COMMANDS, build_app

    root = build_app()
    root_ctx = typer.Context(root, info_name="signkit", **root.context_settings)
    found = []
    for name in COMMANDS:
        command = root.get_command(root_ctx, name)
        group_ctx = typer.Context(command, info_name=name, parent=root_ctx)
        if hasattr(command, "list_commands"):
            for sub in command.list_commands(group_ctx):
                leaf = command.get_command(group_ctx, sub)
                leaf_ctx = typer.Context(leaf, info_name=sub, parent=group_ctx)
                found.append(([name, sub], leaf, leaf_ctx))
        else:
            found.append(([name], command, group_ctx))
    return found


def _root_page() -> str:
    import typer

    from .app import COMMANDS, build_app

    root = build_app()
    ctx = typer.Context(root, info_name="signkit", **root.context_settings)
    body = [".SH SYNOPSIS", "\\fBsignkit\\fR [\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]..."]
    body += [".SH DESCRIPTION"]
    for paragraph in _paragraphs(root.help or ""):
        body += [".PP", paragraph]
    body += [".SH COMMANDS"]
    for path, command, _ctx in commands():
        page = "signkit-" + "-".join(path)
        summary = command.get_short_help_str(limit=80)
        body += [".TP", f"\\fB{page}\\fR(1)", _escape(summary)]
    body.append(".SH OPTIONS")
    for term, text in _options(ctx):
        body += [".TP", term, _escape(text)]
    body += _exit_status()
    body.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        body += [".TP", f"\\fB{_escape(name)}\\fR", _escape(text)]
    body += [
        ".SH FILES",
        ".TP",
        "\\fI$XDG_CONFIG_HOME/signkit/config.toml\\fR, \\fI/etc/signkit/config.toml\\fR",
        "Profiles and presets (the first found).",
        ".TP",
        "\\fI$XDG_STATE_HOME/signkit/audit.jsonl\\fR",
        "The audit log (and audit\\-seal.key, pin\\-guard/ beside it).",
        ".SH SEE ALSO",
        ", ".join(f"\\fBsignkit\\-{name}\\fR" for name in COMMANDS)
        + " (one page per command, e.g. \\fBsignkit\\-sign\\-pdf\\fR(1))",
    ]
    return _page("signkit", root.help.splitlines()[0].rstrip(".") if root.help else "", body)


def manpages() -> dict[str, str]:
    """File name -> roff text of every page."""
    from .app import use_language

    use_language("en")  # the pages are written in the language of the code
    pages = {f"signkit.{SECTION}": _root_page()}
    for path, command, ctx in commands():
        pages[f"signkit-{'-'.join(path)}.{SECTION}"] = _leaf_page(path, command, ctx)
    return pages


def write_manpages(directory: Path) -> list[Path]:
    """Write every page into ``directory`` (created); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in manpages().items():
        target = directory / name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":
    for page in write_manpages(Path(sys.argv[1])):
        print(page)
