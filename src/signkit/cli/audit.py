"""`signkit audit verify|show|rotate|key`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from signkit.i18n import t

from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import ConfigOptions, OutputOptions

app = new_app("audit", "Check, read and rotate the tamper-evident audit log.", no_args_is_help=True)


@app.callback()
def group() -> None:
    """Check, read and rotate the tamper-evident audit log."""


LogPath = Annotated[
    Path | None,
    typer.Argument(
        metavar="PATH",
        dir_okay=False,
        show_default=False,
        help="The audit log (default: $XDG_STATE_HOME/signkit/audit.jsonl).",
    ),
]
SealKey = Annotated[
    Path | None,
    typer.Option(
        "--audit-seal-key",
        metavar="FILE",
        dir_okay=False,
        help="Seal key (default: $XDG_STATE_HOME/signkit/audit-seal.key).",
    ),
]


def _log_path(path: Path | None) -> Path:
    from signkit.audit.log import default_audit_path

    return path or default_audit_path()


@command(app, "verify")
@grouped
def verify(
    path: LogPath = None,
    *,
    seal_keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--seal-key",
            metavar="FILE",
            dir_okay=False,
            help="Trusted seal key (PEM public key, or the private key); repeatable. "
            "Default: $XDG_STATE_HOME/signkit/audit-seal.key.pub.",
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor",
            metavar="FILE",
            dir_okay=False,
            help="Seal copies kept outside the log (written by --audit-anchor, or lines "
            "from syslog): detects runs removed from the end. Default: <log>.anchor if present.",
        ),
    ] = None,
    tsa_trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--tsa-trust",
            metavar="PATH",
            help="Trust anchors the seal time-stamps' TSA must chain to; repeatable "
            "(without it only the token's signature and imprint are checked).",
        ),
    ] = None,
    chain_only: Annotated[
        bool,
        typer.Option(
            "--chain-only",
            help="Check the hash chain only, not the seals (weaker: anyone can rebuild a chain).",
        ),
    ] = False,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Check the chain, the seals and the anchor; report the first bad line.

    \b
    Exit codes: 0 intact (a note may still follow: a torn last line after a
    crash, which the next run marks), 1 tampering found (edited, deleted, inserted,
    reordered, unsealed, truncated, missing file), 3 log unreadable, 5 a seal
    cannot be checked (no trusted seal key for it), a time-stamp's TSA is not
    trusted (--tsa-trust), or a key/anchor is unusable.
    """
    out = Output.of(output)
    tsa_anchors = tuple(tsa_trust or ())

    def body() -> int:
        from signkit.audit.log import default_anchor_path
        from signkit.audit.seal import default_seal_key_path, load_public_keys
        from signkit.audit.verify import verify_log
        from signkit.errors import ConfigError, InputError
        from signkit.pki.anchors import TrustSpec, require_anchors

        log = _log_path(path)
        keys_from = list(seal_keys or ())
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
        require_anchors(TrustSpec(anchors=tsa_anchors))
        report = verify_log(
            log, seal_keys=keys, anchor=chosen, check_seals=not chain_only, tsa_anchors=tsa_anchors
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
            out.error(str(report.problem))
        elif report.key_problem is not None:
            hint = (
                "pass the TSA's root with --tsa-trust"
                if report.key_problem.kind == "untrusted-tsa"
                else "pass the sealer's public key with --seal-key FILE"
            )
            out.error(str(report.key_problem), hint)
        else:
            stamps = f", {len(report.timestamps)} time-stamp(s)" if report.timestamps else ""
            anchored = f", {report.anchor_checked} anchor line(s) matched" if chosen else ""
            mode = " (chain only: seals not checked)" if chain_only else ""
            out.summary(
                f"ok: {report.records} records in {len(report.files)} file(s), "
                f"{report.seals} seal(s) verified (sealed through seq {report.sealed_through})"
                f"{stamps}{anchored}{mode}"
            )
        return int(report.exit_code)

    run_command(out, body)


@command(app, "show")
@grouped
def show(
    path: LogPath = None,
    *,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="TIME", help="From this date/time (ISO 8601; local if no offset)."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Before this date/time.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="NAME", help="OS user who ran signkit.")
    ] = None,
    file_pattern: Annotated[
        str | None,
        typer.Option("--file", metavar="PATTERN", help="Input/output path: text or glob."),
    ] = None,
    cert: Annotated[
        str | None,
        typer.Option(
            "--cert", metavar="SHA256|TEXT", help="Signer: fingerprint prefix or subject text."
        ),
    ] = None,
    outcome: Annotated[
        Literal["signed", "failed", "skipped", "not-attempted", "login-failed"] | None,
        typer.Option("--outcome", help="Only this outcome."),
    ] = None,
    all_records: Annotated[
        bool, typer.Option("--all-records", help="Every record, not only document outcomes.")
    ] = False,
    csv_output: Annotated[bool, typer.Option("--csv", help="CSV on stdout.")] = False,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Who signed what, when, with which certificate: filtered, as a table, JSON or CSV."""
    out = Output.of(output)

    def body() -> int:
        from signkit.audit.query import COLUMNS, ShowFilter, parse_time, show_rows

        flt = ShowFilter(
            since=parse_time(since, "--since") if since else None,
            until=parse_time(until, "--until") if until else None,
            user=user,
            file=file_pattern,
            cert=cert,
            outcome=outcome,
            all_records=all_records,
        )
        rows = show_rows(_log_path(path), flt)
        if out.json:
            out.emit_json(rows)
        elif csv_output:
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
            out.table(table)
            out.summary(f"{len(rows)} record(s)")
        return 0

    run_command(out, body)


@command(app, "rotate")
@grouped
def rotate(
    path: LogPath = None,
    *,
    audit_seal_key: SealKey = None,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Start a new log file chained to the old one (the old file keeps its name plus a time)."""
    out = Output.of(output)

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
        out.summary(f"{log}: old records now in {archive}; the new file continues the chain")
        return 0

    run_command(out, body)


@command(app, "key")
@grouped
def key(
    *,
    audit_seal_key: SealKey = None,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Print the seal key's public half and fingerprint (create the key if missing)."""
    out = Output.of(output)

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
