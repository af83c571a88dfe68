"""`signkit cert check`: certificate expiry, chain and revocation for IT and cron."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import (
    AuditOptions,
    ConfigOptions,
    KeyOptions,
    OutputOptions,
    TokenOptions,
    TrustOptions,
    ValidationOptions,
)

app = new_app("cert", "Check certificates: expiry, chain, revocation.", no_args_is_help=True)


@app.callback()
def group() -> None:
    """Check certificates: expiry, chain, revocation."""


@command(app, "check")
@grouped
def check(
    *,
    files: Annotated[
        list[Path] | None,
        typer.Option(
            "--file",
            metavar="FILE",
            dir_okay=False,
            help="Certificate file (PEM/DER/PKCS#7 bundle); repeatable.",
        ),
    ] = None,
    documents: Annotated[
        list[Path] | None,
        typer.Option(
            "--document",
            metavar="FILE",
            dir_okay=False,
            help="Signed PDF: check its signers' certificates; repeatable.",
        ),
    ] = None,
    trust: TrustOptions,
    validation: ValidationOptions,
    warn_days: Annotated[
        int,
        typer.Option(
            "--warn-days",
            min=0,
            metavar="N",
            help="Exit 7 (Nagios WARNING) when a certificate expires within N days.",
        ),
    ] = 30,
    crit_days: Annotated[
        int,
        typer.Option(
            "--crit-days",
            min=0,
            metavar="N",
            help="Nagios CRITICAL (and status 2 in the metrics) when a certificate expires "
            "within N days (at most --warn-days).",
        ),
    ] = 7,
    report_format: Annotated[
        Literal["text", "nagios", "prometheus"],
        typer.Option(
            "--format",
            help="text: one line per certificate; nagios: one status line, exit 0-3; "
            "prometheus: node_exporter textfile metrics (to -o FILE, replaced atomically).",
        ),
    ] = "text",
    nagios: Annotated[bool, typer.Option("--nagios", help="The same as --format nagios.")] = False,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            dir_okay=False,
            help="--format prometheus: the .prom file of the textfile collector (default: stdout).",
        ),
    ] = None,
    audit: AuditOptions,
    token: TokenOptions,
    key: KeyOptions,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Check token certificates (no login), certificate files, or a document's signers.

    \b
    One line per certificate on stdout (for cron mail): days left as people
    count them (calendar days, local time zone) and the exact end of validity.
    Exit codes: 0 all fine, 7 one expires within --warn-days, 5 expired,
    revoked, not yet valid or untrusted.
    With --format nagios (or --nagios): always one status line, exit 0 OK,
    1 WARNING, 2 CRITICAL, 3 UNKNOWN (the check itself failed: token absent,
    file missing, ...); perfdata min_days_left with the warn/crit thresholds.
    With --format prometheus: signkit_cert_not_after_seconds,
    signkit_cert_days_left and signkit_cert_status per certificate, and
    signkit_cert_check_success, for node_exporter's textfile collector.
    \b
    Examples:
      signkit cert check --token-label VNPT-CA --trust /etc/signkit/roots/
      signkit cert check --file staff.pem --warn-days 60 --crit-days 14 --nagios
      signkit cert check --document received.pdf --trust roots.pem --json
      signkit cert check --token-label VNPT-CA --trust vn-gov --format prometheus \\
          -o /var/lib/prometheus/node-exporter/signkit.prom
    """
    out = Output.of(output)
    argv = tuple(sys.argv[1:])
    file_list = list(files or ())
    document_list = list(documents or ())
    form = "nagios" if nagios else report_format

    def body() -> int:
        from signkit.errors import UsageError

        if nagios and report_format not in ("text", "nagios"):
            raise UsageError("--nagios and --format prometheus: choose one")
        if crit_days > warn_days:
            raise UsageError(f"--crit-days ({crit_days}) is more than --warn-days ({warn_days})")
        if metrics_file is not None and form != "prometheus":
            raise UsageError("-o/--output goes with --format prometheus")
        if out.json and form != "text":
            raise UsageError(f"--json and --format {form}: choose one")
        statuses = _check(
            trust=trust,
            validation=validation,
            token=token,
            key=key,
            files=file_list,
            documents=document_list,
            warn_days=warn_days,
            crit_days=crit_days,
            out=out,
        )
        _audit(audit, argv, statuses)
        return _show(out, form, statuses, warn_days, crit_days, metrics_file)

    def guarded() -> int:
        from signkit.errors import SignkitError

        if form == "text":
            return body()
        try:
            return body()
        except SignkitError as exc:
            # A monitor always gets its answer: one UNKNOWN line, and
            # metrics saying the check failed (no stale certificate values).
            if form == "nagios":
                code, line = certcheck_unknown(str(exc))
                typer.echo(line)
                out.show_error(exc)
                return code
            _write_metrics([], metrics_file, success=False)
            raise
        except Exception as exc:
            if form == "nagios":
                code, line = certcheck_unknown(f"internal error ({type(exc).__name__})")
                typer.echo(line)
                out.show_bug(exc)
                return code
            raise

    run_command(out, guarded)


def certcheck_unknown(reason: str) -> tuple[int, str]:
    """The Nagios line of a check that could not be done."""
    from signkit.verify.certcheck import nagios_unknown

    return nagios_unknown(reason)


def _check(
    *,
    trust: TrustOptions,
    validation: ValidationOptions,
    token: TokenOptions,
    key: KeyOptions,
    files: list[Path],
    documents: list[Path],
    warn_days: int,
    crit_days: int,
    out: Output,
) -> list[Any]:
    from signkit.pki.anchors import TrustSpec, anchors_from, require_anchors, resolve_anchor
    from signkit.verify import certcheck
    from signkit.verify.policy import VerifyPolicy

    from .tokenspec import build_token_spec
    from .verify import parse_time

    trust_paths = tuple(resolve_anchor(v) for v in trust.trust or ())
    require_anchors(TrustSpec(anchors=trust_paths))
    policy = VerifyPolicy(
        anchors=anchors_from(trust_paths, system=validation.trust_system),
        intermediates=validation.intermediate_certificates(),
        revocation=trust.revocation,
        offline=validation.offline,
        at=parse_time(validation.at) if validation.at else None,
    )
    # --module alone (often from SIGNKIT_MODULE) does not make the token a source.
    sources: list[tuple[str, bytes, list[bytes]]] = []
    sources += certcheck.certificates_from_files(files)
    sources += certcheck.certificates_from_documents(documents)
    if token.chosen() or key.chosen() or not (files or documents):
        spec = build_token_spec(token=token, key=key)
        sources += certcheck.certificates_from_token(spec)
    statuses = [
        certcheck.check_certificate(
            der, others, policy, source=source, warn_days=warn_days, crit_days=crit_days
        )
        for source, der, others in sources
    ]
    for note in dict.fromkeys(n for s in statuses for n in s.notes):
        out.warn(note)
    return statuses


def _audit(audit: AuditOptions, argv: tuple[str, ...], statuses: list[Any]) -> None:
    if audit.no_audit:
        return
    from signkit import __version__
    from signkit.audit.log import AuditLog, default_audit_path, run_identity

    log = AuditLog(audit.audit_log or default_audit_path())
    log.add(
        {
            "type": "cert-check",
            "version": __version__,
            "options": list(argv),
            **run_identity(),
            "certificates": [
                {"sha256": s.sha256, "subject": s.subject, "state": s.state} for s in statuses
            ],
        }
    )
    log.close()


def _write_metrics(statuses: list[Any], path: Path | None, *, success: bool) -> None:
    """The metrics on stdout, or replacing ``path`` atomically (the collector
    never reads half a file)."""
    from datetime import UTC, datetime

    from signkit.errors import OutputError
    from signkit.fsio import atomic_write
    from signkit.verify.certcheck import prometheus

    text = prometheus(statuses, success=success, now=datetime.now(UTC))
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        # Readable by the collector, which runs as another user.
        atomic_write(path, text.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise OutputError(
            f"cannot write the metrics ({exc.strerror or exc})", subject=str(path)
        ) from None


def _show(
    out: Output,
    form: str,
    statuses: list[Any],
    warn_days: int,
    crit_days: int,
    metrics_file: Path | None,
) -> int:
    from signkit.verify import certcheck

    if form == "nagios":
        code, line = certcheck.nagios(statuses, warn_days=warn_days, crit_days=crit_days)
        typer.echo(line)
        return code
    if form == "prometheus":
        _write_metrics(statuses, metrics_file, success=True)
        return certcheck.exit_code(statuses)
    if out.json:
        out.emit_json(
            {
                "schema_version": 1,
                "command": "cert check",
                "warn_days": warn_days,
                "crit_days": crit_days,
                "worst": certcheck.worst_state(statuses),
                "exit_code": certcheck.exit_code(statuses),
                "certificates": [s.to_json() for s in statuses],
            }
        )
        return certcheck.exit_code(statuses)
    for s in statuses:
        out.result(s.line())
        if out.verbose:
            out.result(f"  issuer: {s.issuer}; {s.algorithm}-{s.key_size}; chain: {s.chain}")
            out.result(
                f"  revocation: {s.revocation} ({s.sources['revocation']}); "
                f"usage: {', '.join(s.key_usage + s.extended_key_usage) or '-'}"
            )
    return certcheck.exit_code(statuses)
