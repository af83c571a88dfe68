"""The click application: root options and command groups.

Built on click directly (Typer's import alone took ~140-170 ms here, over
the 150 ms start-up budget for `signkit --help`; click takes ~85-105 ms).
Command groups are imported only when used: `signkit --help` lists them
from the table below without building their (many) options.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from signkit import __version__
from signkit.errors import EXIT_CODE_TABLE
from signkit.i18n import LANGUAGES, choose_language, set_language

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code:>2}  {text}" for code, text in EXIT_CODE_TABLE
)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "token": ("signkit.cli.token", "group", "Find tokens, keys and certificates; check the PIN."),
    "sign": ("signkit.cli.sign", "group", "Sign documents in bulk with a token key."),
    "verify": ("signkit.cli.verify", "command", "Verify signed PDFs and XML in bulk."),
    "cert": ("signkit.cli.cert", "group", "Check certificates: expiry, chain, revocation."),
    "completion": ("signkit.cli.completion", "command", "Print the completion script for SHELL."),
    "audit": ("signkit.cli.audit", "group", "Check, read and rotate the tamper-evident audit log."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _help = entry
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def build_app() -> click.Group:
    """Assemble the CLI."""

    @click.group(
        name="signkit",
        cls=LazyGroup,
        context_settings=CONTEXT,
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    @click.version_option(
        __version__, "--version", prog_name="signkit", message="%(prog)s %(version)s"
    )
    @click.option(
        "--lang",
        type=click.Choice(LANGUAGES),
        help="Language of messages and reports (default: from LC_ALL, LC_MESSAGES, LANG). "
        "JSON output stays in English.",
    )
    def app(lang: str | None, **_: Any) -> None:
        """Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk.

        PIN sources: the prompt (on a terminal), SIGNKIT_PIN (removed from the
        environment at start-up), --pin-file, --pin-stdin, or the reader's PIN pad.
        """
        set_language(choose_language(lang))

    return app
