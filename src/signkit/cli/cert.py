"""`signkit cert check`: certificate expiry, chain and revocation for IT and cron."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

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
    nagios: Annotated[
        bool, typer.Option("--nagios", help="Print one monitoring status line; exit 0-3.")
    ] = False,
    audit: AuditOptions,
    token: TokenOptions,
    key: KeyOptions,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Check token certificates (no login), certificate files, or a document's signers.

    \b
    One line per certificate (for cron mail). Exit codes: 0 all fine,
    7 one expires within --warn-days, 5 expired, revoked, not yet valid or
    untrusted. With --nagios: one status line, exit 0 OK, 1 WARNING,
    2 CRITICAL, 3 UNKNOWN.
    \b
    Examples:
      signkit cert check --token-label VNPT-CA --trust /etc/signkit/roots/
      signkit cert check --file staff.pem --warn-days 60 --nagios
      signkit cert check --document received.pdf --trust roots.pem --json
    """
    out = Output.of(output)
    argv = tuple(sys.argv[1:])
    file_list = list(files or ())
    document_list = list(documents or ())

    def body() -> int:
        from signkit import __version__
        from signkit.audit.log import AuditLog, default_audit_path, run_identity
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
        sources += certcheck.certificates_from_files(file_list)
        sources += certcheck.certificates_from_documents(document_list)
        if token.chosen() or key.chosen() or not (file_list or document_list):
            spec = build_token_spec(token=token, key=key)
            sources += certcheck.certificates_from_token(spec)
        statuses = [
            certcheck.check_certificate(der, others, policy, source=source, warn_days=warn_days)
            for source, der, others in sources
        ]
        for note in dict.fromkeys(n for s in statuses for n in s.notes):
            out.warn(note)
        if not audit.no_audit:
            log = AuditLog(audit.audit_log or default_audit_path())
            log.add(
                {
                    "type": "cert-check",
                    "version": __version__,
                    "options": list(argv),
                    **run_identity(),
                    "certificates": [
                        {"sha256": s.sha256, "subject": s.subject, "state": s.state}
                        for s in statuses
                    ],
                }
            )
            log.close()
        if out.json:
            out.emit_json(
                {
                    "schema_version": 1,
                    "command": "cert check",
                    "warn_days": warn_days,
                    "worst": certcheck.worst_state(statuses),
                    "exit_code": certcheck.exit_code(statuses),
                    "certificates": [s.to_json() for s in statuses],
                }
            )
        if nagios:
            code, line = certcheck.nagios(statuses)
            typer.echo(line)
            return code
        for s in statuses:
            out.info(s.line())
            if out.verbose:
                out.info(f"  issuer: {s.issuer}; {s.algorithm}-{s.key_size}; chain: {s.chain}")
                out.info(
                    f"  revocation: {s.revocation} ({s.sources['revocation']}); "
                    f"usage: {', '.join(s.key_usage + s.extended_key_usage) or '-'}"
                )
        return certcheck.exit_code(statuses)

    run_command(out, body)
