"""`signkit audit verify|show|rotate|key`, and the audit options of signing commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from signkit.i18n import t

from .context import Output, run_command
from .options import output_options

if TYPE_CHECKING:
    from signkit.audit.log import AuditSpec

F = TypeVar("F", bound=Callable[..., Any])


def audit_options(f: F) -> F:
    """Seal, time-stamp, anchor, syslog and rotation options of commands that write the log."""
    options = [
        click.option(
            "--audit-seal-key",
            type=click.Path(path_type=Path, dir_okay=False),
            metavar="FILE",
            help="Ed25519 key that seals the audit log (default: "
            "$XDG_STATE_HOME/signkit/audit-seal.key, created on first use).",
        ),
        click.option(
            "--audit-tsa",
            metavar="URL",
            help="Also time-stamp each run's last audit record (RFC 3161).",
        ),
        click.option(
            "--audit-anchor",
            type=click.Path(path_type=Path, dir_okay=False),
            metavar="FILE",
            help="Copy every seal to this file, kept where the log's writers cannot "
            "rewrite it (default: <log>.anchor).",
        ),
        click.option(
            "--audit-syslog",
            is_flag=True,
            help="Forward every audit record to syslog/journald "
            "(socket: $SIGNKIT_SYSLOG_SOCKET, else /dev/log).",
        ),
        click.option(
            "--audit-max-bytes",
            type=click.IntRange(min=1),
            metavar="N",
            help="Rotate the audit log once it is larger than N bytes.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def audit_spec(options: dict[str, Any]) -> AuditSpec:
    """The AuditSpec from ``audit_options`` values (removed from ``options``)."""
    from signkit.audit.log import AuditSpec
    from signkit.pki.timestamps import TsaSpec

    tsa = options.pop("audit_tsa", None)
    return AuditSpec(
        seal_key=options.pop("audit_seal_key", None),
        tsa=TsaSpec(url=tsa) if tsa else None,
        anchor=options.pop("audit_anchor", None),
        syslog=bool(options.pop("audit_syslog", False)),
        max_bytes=options.pop("audit_max_bytes", None),
    )


@click.group("audit", no_args_is_help=True)
def group() -> None:
    """Check, read and rotate the tamper-evident audit log."""


_PATH = click.argument(
    "path", required=False, type=click.Path(path_type=Path, dir_okay=False), metavar="[PATH]"
)


def _log_path(path: Path | None) -> Path:
    from signkit.audit.log import default_audit_path

    return path or default_audit_path()


@group.command("verify")
@_PATH
@click.option(
    "--seal-key",
    "seal_keys",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Trusted seal key (PEM public key, or the private key); repeatable. "
    "Default: $XDG_STATE_HOME/signkit/audit-seal.key.pub.",
)
@click.option(
    "--anchor",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Seal copies kept outside the log (written by --audit-anchor, or lines "
    "from syslog): detects runs removed from the end. Default: <log>.anchor if present.",
)
@click.option(
    "--tsa-trust",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Trust anchors the seal time-stamps' TSA must chain to; repeatable "
    "(without it only the token's signature and imprint are checked).",
)
@click.option(
    "--chain-only",
    is_flag=True,
    help="Check the hash chain only, not the seals (weaker: anyone can rebuild a chain).",
)
@output_options
def verify(path: Path | None, seal_keys: tuple[Path, ...], **options: Any) -> None:
    """Check the chain, the seals and the anchor; report the first bad line.

    \b
    Exit codes: 0 intact (a note may still follow: a torn last line after a
    crash, which the next run marks), 1 tampering found (edited, deleted, inserted,
    reordered, unsealed, truncated, missing file), 3 log unreadable, 5 a seal
    cannot be checked (no trusted seal key for it), a time-stamp's TSA is not
    trusted (--tsa-trust), or a key/anchor is unusable.
    """
    out = Output.from_options(options)
    anchor: Path | None = options.pop("anchor")
    chain_only: bool = options.pop("chain_only")
    tsa_trust: tuple[Path, ...] = options.pop("tsa_trust")

    def body() -> int:
        from signkit.audit.log import default_anchor_path
        from signkit.audit.seal import default_seal_key_path, load_public_keys
        from signkit.audit.verify import verify_log
        from signkit.errors import ConfigError, InputError
        from signkit.pki.anchors import TrustSpec, require_anchors

        log = _log_path(path)
        keys_from = list(seal_keys)
        if not keys_from and not chain_only:
            default = default_seal_key_path()
            pub = default.with_name(default.name + ".pub")
            keys_from = [pub] if pub.is_file() else ([default] if default.is_file() else [])
        keys = load_public_keys(keys_from)
        chosen = anchor
        if chosen is None and default_anchor_path(log).is_file():
            chosen = default_anchor_path(log)
            out.info(f"anchor: {chosen} (next to the log; keep a copy elsewhere to rely on it)")
        if anchor is not None and not anchor.is_file():
            raise InputError("anchor file not found", subject=str(anchor))
        require_anchors(TrustSpec(anchors=tsa_trust))
        report = verify_log(
            log, seal_keys=keys, anchor=chosen, check_seals=not chain_only, tsa_anchors=tsa_trust
        )
        if report.seals == 0 and report.key_problem is not None and not keys:
            raise ConfigError(
                "the log is sealed but no seal key was given to check the seals",
                subject=str(log),
                hint="pass --seal-key FILE (the sealer's audit-seal.key.pub), or --chain-only",
            )
        if out.json:
            out.emit_json(report.to_json())
        for note in report.notes:
            out.warn(note)
        if report.problem is not None:
            out.console().print(
                f"{t('error')}: {t(str(report.problem))}", style="bold red", markup=False
            )
        elif report.key_problem is not None:
            out.console().print(
                f"{t('error')}: {t(str(report.key_problem))}", style="bold red", markup=False
            )
            hint = (
                "pass the TSA's root with --tsa-trust"
                if report.key_problem.kind == "untrusted-tsa"
                else "pass the sealer's public key with --seal-key FILE"
            )
            out.console().print(f"{t('hint')}: {t(hint)}", markup=False)
        else:
            stamps = f", {len(report.timestamps)} time-stamp(s)" if report.timestamps else ""
            anchored = f", {report.anchor_checked} anchor line(s) matched" if chosen else ""
            mode = " (chain only: seals not checked)" if chain_only else ""
            out.info(
                f"ok: {report.records} records in {len(report.files)} file(s), "
                f"{report.seals} seal(s) verified (sealed through seq {report.sealed_through})"
                f"{stamps}{anchored}{mode}"
            )
        return int(report.exit_code)

    run_command(out, body)


@group.command("show")
@_PATH
@click.option("--since", metavar="TIME", help="From this date/time (ISO 8601; local if no offset).")
@click.option("--until", metavar="TIME", help="Before this date/time.")
@click.option("--user", metavar="NAME", help="OS user who ran signkit.")
@click.option("--file", "file_pattern", metavar="PATTERN", help="Input/output path: text or glob.")
@click.option("--cert", metavar="SHA256|TEXT", help="Signer: fingerprint prefix or subject text.")
@click.option(
    "--outcome",
    type=click.Choice(["signed", "failed", "skipped", "not-attempted", "login-failed"]),
    help="Only this outcome.",
)
@click.option("--all-records", is_flag=True, help="Every record, not only document outcomes.")
@click.option("--csv", "csv_output", is_flag=True, help="CSV on stdout.")
@output_options
def show(path: Path | None, **options: Any) -> None:
    """Who signed what, when, with which certificate: filtered, as a table, JSON or CSV."""
    out = Output.from_options(options)

    def body() -> int:
        from signkit.audit.query import COLUMNS, ShowFilter, parse_time, show_rows

        o = options
        flt = ShowFilter(
            since=parse_time(o["since"], "--since") if o["since"] else None,
            until=parse_time(o["until"], "--until") if o["until"] else None,
            user=o["user"],
            file=o["file_pattern"],
            cert=o["cert"],
            outcome=o["outcome"],
            all_records=o["all_records"],
        )
        rows = show_rows(_log_path(path), flt)
        if out.json:
            out.emit_json(rows)
        elif o["csv_output"]:
            import csv

            writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            sys.stdout.flush()
        else:
            from rich.table import Table

            table = Table(box=None, pad_edge=False)
            for col in ("time", "user", "outcome", "input", "output / error", "signer"):
                table.add_column(t(col))
            for r in rows:
                table.add_row(
                    str(r["time"] or ""),
                    str(r["os_user"] or ""),
                    str(r["outcome"] or r["type"] or ""),
                    str(r["input"] or ""),
                    str(r["error"] or r["output"] or ""),
                    str(r["signer_subject"] or ""),
                )
            out.console().print(table)
            out.info(f"{len(rows)} record(s)")
        return 0

    run_command(out, body)


@group.command("rotate")
@_PATH
@click.option(
    "--audit-seal-key",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Seal key (default: $XDG_STATE_HOME/signkit/audit-seal.key).",
)
@output_options
def rotate(path: Path | None, audit_seal_key: Path | None, **options: Any) -> None:
    """Start a new log file chained to the old one (the old file keeps its name plus a time)."""
    out = Output.from_options(options)

    def body() -> int:
        from signkit.audit.log import AuditLog, AuditSpec
        from signkit.errors import InputError

        log = _log_path(path)
        if not log.is_file():
            raise InputError("audit log not found", subject=str(log))
        audit = AuditLog(log, AuditSpec(seal_key=audit_seal_key), warn=out.warn)
        try:
            archive = audit.rotate()
        finally:
            audit.close()
        if out.json:
            out.emit_json({"rotated_to": str(archive), "log": str(log)})
        out.info(f"{log}: old records now in {archive}; the new file continues the chain")
        return 0

    run_command(out, body)


@group.command("key")
@click.option(
    "--audit-seal-key",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Seal key (default: $XDG_STATE_HOME/signkit/audit-seal.key).",
)
@output_options
def key(audit_seal_key: Path | None, **options: Any) -> None:
    """Print the seal key's public half and fingerprint (create the key if missing)."""
    out = Output.from_options(options)

    def body() -> int:
        from signkit.audit.seal import default_seal_key_path, load_or_create_seal_key

        path = audit_seal_key or default_seal_key_path()
        seal = load_or_create_seal_key(path)
        from cryptography.hazmat.primitives import serialization

        pem = seal.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if out.json:
            out.emit_json(
                {"path": str(path), "fingerprint": seal.fingerprint, "public_key": pem.decode()}
            )
        else:
            sys.stdout.write(pem.decode())
            out.info(f"seal key {path}: fingerprint {seal.fingerprint}")
        return 0

    run_command(out, body)
