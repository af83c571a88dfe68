"""Options shared by every command, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from signkit.errors import UsageError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable report on stdout.")]
VerboseOpt = Annotated[bool, typer.Option("-v", "--verbose", help="More detail on stderr.")]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors and warnings.")]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show a traceback on errors (never shows a PIN).")
]

_TOKEN = "Token and key selection"  # noqa: S105 - a help panel title
ModuleOpt = Annotated[
    str | None,
    typer.Option(
        "--module",
        envvar="SIGNKIT_MODULE",
        help="PKCS#11 module (.so) of the token; default: discover (p11-kit, known paths).",
        rich_help_panel=_TOKEN,
    ),
]
TokenLabelOpt = Annotated[
    str | None, typer.Option("--token-label", help="Token label.", rich_help_panel=_TOKEN)
]
TokenSerialOpt = Annotated[
    str | None, typer.Option("--token-serial", help="Token serial.", rich_help_panel=_TOKEN)
]
SlotOpt = Annotated[
    int | None, typer.Option("--slot", help="PKCS#11 slot id.", rich_help_panel=_TOKEN)
]
KeyLabelOpt = Annotated[
    str | None,
    typer.Option(
        "--key-label", help="Label of the key or its certificate.", rich_help_panel=_TOKEN
    ),
]
KeyIdOpt = Annotated[
    str | None,
    typer.Option("--key-id", help="CKA_ID of the key, in hex.", rich_help_panel=_TOKEN),
]
CertFingerprintOpt = Annotated[
    str | None,
    typer.Option(
        "--cert-fingerprint",
        help="SHA-256 fingerprint of the signer certificate (hex).",
        rich_help_panel=_TOKEN,
    ),
]
KeyUriOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="RFC 7512 URI, e.g. 'pkcs11:token=MyToken;object=MyKey'.",
        rich_help_panel=_TOKEN,
    ),
]

_PIN = "PIN"
PinFileOpt = Annotated[
    Path | None,
    typer.Option("--pin-file", help="Read the PIN from this file.", rich_help_panel=_PIN),
]
PinStdinOpt = Annotated[
    bool,
    typer.Option("--pin-stdin", help="Read the PIN from standard input.", rich_help_panel=_PIN),
]
PinPadOpt = Annotated[
    bool,
    typer.Option(
        "--pin-pad",
        help="Enter the PIN on the reader's PIN pad (protected authentication path).",
        rich_help_panel=_PIN,
    ),
]


def parse_key_id(value: str | None) -> bytes | None:
    """Hex (optionally with ':' separators) to bytes."""
    if value is None:
        return None
    cleaned = value.replace(":", "").replace(" ", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise UsageError("--key-id must be hexadecimal", subject=value) from exc
