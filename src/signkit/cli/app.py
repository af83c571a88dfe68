"""The click application: root options and command groups.

Built on click directly (Typer's import alone took ~140-170 ms here, over
the 150 ms start-up budget for `signkit --help`; click takes ~85-105 ms).
"""

from __future__ import annotations

import click

from signkit import __version__
from signkit.errors import EXIT_CODE_TABLE

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code:>2}  {text}" for code, text in EXIT_CODE_TABLE
)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def build_app() -> click.Group:
    """Assemble the CLI. Command modules import the heavy parts lazily."""
    from signkit.cli import completion, sign, token

    @click.group(
        name="signkit",
        context_settings=CONTEXT,
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    @click.version_option(
        __version__, "--version", prog_name="signkit", message="%(prog)s %(version)s"
    )
    def app() -> None:
        """Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk.

        PIN sources: the prompt (on a terminal), SIGNKIT_PIN (removed from the
        environment at start-up), --pin-file, --pin-stdin, or the reader's PIN pad.
        """

    app.add_command(token.group)
    app.add_command(sign.group)
    app.add_command(completion.command)
    return app
