"""The root of the CLI: its options and the table of command groups.

Command groups are imported only when used: `signkit --help` lists them
from the table below, without importing their modules or building their
(many) options; `signkit sign pdf …` imports `signkit.cli.sign` alone.
"""

from __future__ import annotations

import gettext
import importlib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from signkit import __version__
from signkit.errors import EXIT_CODE_TABLE
from signkit.i18n import DOMAIN, LOCALE_DIR, choose_language, set_language, t

from .framework import Group, new_app
from .profiles import ROOT_META, config_option, profile_option

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# name -> (module holding `app`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "token": ("signkit.cli.token", "Find tokens, keys and certificates; check the PIN."),
    "sign": ("signkit.cli.sign", "Sign documents in bulk with a token key."),
    "verify": ("signkit.cli.verify", "Verify signed PDFs, XML and CMS (.p7s, .p7m) in bulk."),
    "extend": (
        "signkit.cli.extend",
        "Raise existing signatures without re-signing (PDF, XML, CMS); renew archives.",
    ),
    "cert": ("signkit.cli.cert", "Check certificates: expiry, chain, revocation."),
    "trust": ("signkit.cli.trust", "Install and list the roots --trust NAME trusts (bundles)."),
    "completion": ("signkit.cli.completion", "Print the completion script for SHELL."),
    "audit": ("signkit.cli.audit", "Check, read and rotate the tamper-evident audit log."),
    "report": ("signkit.cli.report", "Join the JSON reports of a run split with --shard."),
}


def use_language(lang: str) -> None:
    """Messages in ``lang``: signkit's, and those of the command-line
    framework, which asks ``gettext.gettext`` (the process-wide domain and
    the LANGUAGE variable choose its catalogue)."""
    set_language(lang)
    os.environ["LANGUAGE"] = lang
    gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(DOMAIN)


class RootGroup(Group):
    """`signkit`: command groups imported on first use."""

    _loaded: dict[str, Any]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        loaded = self.__dict__.setdefault("_loaded", {})
        if cmd_name not in loaded:
            sub_app = importlib.import_module(entry[0]).app
            loaded[cmd_name] = typer.main.get_command(sub_app)
        return loaded[cmd_name]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = [(name, t(help_text)) for name, (_module, help_text) in COMMANDS.items()]
        with formatter.section(t("Commands")):
            formatter.write_dl(rows)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        formatter.write_paragraph()
        formatter.write_text(t("Exit codes:"))
        with formatter.indentation():
            formatter.write_dl([(str(code), t(text)) for code, text in EXIT_CODE_TABLE])


def _language(value: str | None) -> str | None:
    # Set while the root's options are read: a mistyped command, found
    # before the root's callback runs, is already reported in this language.
    use_language(choose_language(value))
    return value


def _version(value: bool) -> None:
    if value:
        typer.echo(f"signkit {__version__}")
        raise typer.Exit(0)


app = new_app(
    "signkit",
    "Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk.",
    cls=RootGroup,
    no_args_is_help=True,
    context_settings=CONTEXT,
)


@app.callback()
def root(
    ctx: typer.Context,
    lang: Annotated[
        Literal["en", "vi"] | None,
        typer.Option(
            "--lang",
            callback=_language,
            is_eager=True,
            help="Language of messages and reports (default: from LC_ALL, LC_MESSAGES, LANG). "
            "JSON output stays in English.",
        ),
    ] = None,
    profile: Annotated[
        str | None, profile_option(envvar="SIGNKIT_PROFILE", show_envvar=False)
    ] = None,
    config_path: Annotated[Path | None, config_option()] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk.

    PIN sources: the prompt (on a terminal), SIGNKIT_PIN (removed from the
    environment at start-up), --pin-file, --pin-stdin, or the reader's PIN pad.
    """
    ctx.meta[ROOT_META] = {"config_path": config_path, "profile": profile}


def build_app() -> Any:
    """The CLI as a click command (what `signkit` runs)."""
    return typer.main.get_command(app)
