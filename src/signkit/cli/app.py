"""The Typer application: root options and command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from signkit import __version__
from signkit.errors import EXIT_CODE_TABLE

EXIT_CODES_HELP = "Exit codes: " + "; ".join(f"{code} {text}" for code, text in EXIT_CODE_TABLE)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"signkit {__version__}")
        raise typer.Exit(0)


def build_app() -> typer.Typer:
    """Assemble the CLI. Command modules import the heavy parts lazily."""
    from signkit.cli import token

    app = typer.Typer(
        name="signkit",
        help="Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk.",
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
        # Locals can hold a PIN: never print them in a traceback.
        pretty_exceptions_show_locals=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def root(
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=_version, is_eager=True, help="Show the version and exit."
            ),
        ] = False,
    ) -> None:
        """Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk."""

    app.add_typer(token.app, name="token")
    return app
