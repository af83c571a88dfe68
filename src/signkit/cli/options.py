"""Options shared by every command, defined once as decorators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from signkit.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


def _apply(f: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        f = option(f)
    return f


def output_options(f: F) -> F:
    """--json, -v/--verbose, -q/--quiet, --debug: accepted by every subcommand."""
    return _apply(
        f,
        [
            click.option(
                "--json",
                "json_output",
                is_flag=True,
                help="Print a machine-readable report on stdout.",
            ),
            click.option("-v", "--verbose", is_flag=True, help="More detail on stderr."),
            click.option("-q", "--quiet", is_flag=True, help="Only errors and warnings."),
            click.option(
                "--debug", is_flag=True, help="Show a traceback on errors (never shows a PIN)."
            ),
        ],
    )


def module_option(f: F) -> F:
    """--module (or SIGNKIT_MODULE)."""
    return click.option(
        "--module",
        envvar="SIGNKIT_MODULE",
        metavar="PATH",
        help="PKCS#11 module (.so) of the token [env SIGNKIT_MODULE]; "
        "default: discover (p11-kit registrations, known install paths).",
    )(f)


def token_options(f: F) -> F:
    """Options that choose the token (and --key URIs)."""
    return _apply(
        f,
        [
            module_option,
            click.option("--token-label", metavar="LABEL", help="Token label."),
            click.option("--token-serial", metavar="SERIAL", help="Token serial."),
            click.option("--slot", type=int, metavar="ID", help="PKCS#11 slot id."),
            click.option(
                "--key",
                "key_uri",
                metavar="URI",
                help="RFC 7512 URI, e.g. 'pkcs11:token=MyToken;object=MyKey'.",
            ),
        ],
    )


def key_options(f: F) -> F:
    """Options that choose the key on the token."""
    return _apply(
        f,
        [
            click.option(
                "--key-label", metavar="LABEL", help="Label of the key or of its certificate."
            ),
            click.option("--key-id", metavar="HEX", help="CKA_ID of the key, in hex."),
            click.option(
                "--cert-fingerprint",
                metavar="SHA256",
                help="SHA-256 fingerprint of the signer certificate (hex).",
            ),
        ],
    )


def pin_options(f: F) -> F:
    """Where the PIN comes from (besides SIGNKIT_PIN and the prompt)."""
    return _apply(
        f,
        [
            click.option(
                "--pin-file",
                type=click.Path(path_type=Path, dir_okay=False),
                metavar="FILE",
                help="Read the PIN from this file (first line).",
            ),
            click.option("--pin-stdin", is_flag=True, help="Read the PIN from standard input."),
            click.option(
                "--pin-pad",
                is_flag=True,
                help="Enter the PIN on the reader's PIN pad (protected authentication path).",
            ),
        ],
    )


def parse_key_id(value: str | None) -> bytes | None:
    """Hex (optionally with ':' separators or 0x) to bytes."""
    if value is None:
        return None
    cleaned = value.replace(":", "").replace(" ", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise UsageError("--key-id must be hexadecimal", subject=value) from exc
