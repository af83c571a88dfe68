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


def batch_options(f: F) -> F:
    """Inputs, outputs and batch behaviour of the bulk signing commands."""
    return _apply(
        f,
        [
            click.argument("inputs", nargs=-1, metavar="INPUT..."),
            click.option("-r", "--recursive", is_flag=True, help="Descend into directories."),
            click.option(
                "--manifest",
                type=click.Path(path_type=Path, dir_okay=False),
                help="CSV or JSON Lines, one row per document; columns named after the "
                "long options (input, output, reason, level, preset, ...).",
            ),
            click.option(
                "-o",
                "--output",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Output file (single input).",
            ),
            click.option(
                "--output-dir",
                type=click.Path(path_type=Path, file_okay=False),
                help="Write outputs here, mirroring the input tree.",
            ),
            click.option(
                "--suffix",
                default="_signed",
                show_default=True,
                help="Output next to the input: a.pdf -> a_signed.pdf.",
            ),
            click.option(
                "--in-place",
                is_flag=True,
                help="Replace the input once the signed file is complete and checked.",
            ),
            click.option(
                "--allow-absolute-outputs",
                is_flag=True,
                help="Let manifest rows name outputs anywhere (absolute, or climbing "
                "out with ../); by default they stay under the manifest's folder "
                "(or --output-dir).",
            ),
            click.option("--force", is_flag=True, help="Overwrite existing outputs."),
            click.option(
                "--resign",
                is_flag=True,
                help="Sign again documents whose output already carries this signer's signature.",
            ),
            click.option("--dry-run", is_flag=True, help="Print the plan; sign nothing."),
            click.option("--fail-fast", is_flag=True, help="Stop at the first failed document."),
            click.option(
                "--jobs",
                type=click.IntRange(min=1),
                default=None,
                help="Worker processes preparing documents (default: one per CPU).",
            ),
        ],
    )


def limits_options(f: F) -> F:
    """The per-document budget in worker processes (hostile files)."""
    return _apply(
        f,
        [
            click.option(
                "--doc-memory",
                type=click.IntRange(min=16),
                default=1024,
                show_default=True,
                metavar="MiB",
                help="Memory a document may take while processed; over it, it fails as "
                "malformed and the batch goes on.",
            ),
            click.option(
                "--doc-timeout",
                type=click.FloatRange(min=1),
                default=120,
                show_default=True,
                metavar="SECONDS",
                help="Time a document may take while processed; over it, it fails as "
                "malformed and the batch goes on.",
            ),
        ],
    )


def limits_from(options: dict[str, Any]) -> Any:
    """The Limits of --doc-memory and --doc-timeout."""
    from signkit.workers import Limits

    return Limits(
        memory_bytes=int(options["doc_memory"]) << 20, seconds=float(options["doc_timeout"])
    )


def tsa_options(f: F) -> F:
    """The RFC 3161 time-stamping authority."""
    return _apply(
        f,
        [
            click.option(
                "--tsa", "tsa_url", metavar="URL", help="RFC 3161 time-stamping authority."
            ),
            click.option("--tsa-policy", metavar="OID", help="Requested TSA policy."),
            click.option("--tsa-no-nonce", is_flag=True, help="Do not send a nonce to the TSA."),
            click.option("--tsa-user", metavar="USER", help="HTTP basic-auth user for the TSA."),
            click.option(
                "--tsa-password-file",
                type=click.Path(path_type=Path, dir_okay=False),
                help="TSA password file [or env SIGNKIT_TSA_PASSWORD].",
            ),
        ],
    )


def trust_options(f: F) -> F:
    """Trust anchors and the pre-signing revocation check."""
    return _apply(
        f,
        [
            click.option(
                "--trust",
                "trust",
                multiple=True,
                metavar="PATH|NAME",
                help="Trust anchors: a PEM/DER/PKCS#7 file or directory, or an installed "
                "bundle by name (vn-gov, vn-public: ~/.config/signkit/trust/NAME/); repeatable.",
            ),
            click.option(
                "--revocation",
                type=click.Choice(["hard", "soft", "off"]),
                default="soft",
                show_default=True,
                help="Signer revocation check before signing.",
            ),
        ],
    )


def report_options(f: F) -> F:
    """The JSON report file and the audit log."""
    return _apply(
        f,
        [
            click.option(
                "--report",
                "report_path",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Write the JSON report here too.",
            ),
            click.option(
                "--audit-log",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Audit log (default: $XDG_STATE_HOME/signkit/audit.jsonl).",
            ),
            click.option(
                "--no-audit", is_flag=True, help="Do not write the audit log (noted on stderr)."
            ),
        ],
    )
