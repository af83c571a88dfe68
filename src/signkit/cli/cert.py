"""`signkit cert check`: certificate expiry, chain and revocation for IT and cron."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .context import Output, run_command
from .options import key_options, output_options, token_options


@click.group("cert", no_args_is_help=True)
def group() -> None:
    """Check certificates: expiry, chain, revocation."""


@group.command("check")
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Certificate file (PEM/DER/PKCS#7 bundle); repeatable.",
)
@click.option(
    "--document",
    "documents",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Signed PDF: check its signers' certificates; repeatable.",
)
@click.option(
    "--trust",
    multiple=True,
    metavar="PATH|NAME",
    help="Trust anchors: a PEM/DER/PKCS#7 file or directory, or an installed bundle by name "
    "(vn-gov, vn-public); repeatable.",
)
@click.option("--trust-system", is_flag=True, help="Also trust the operating system's CA store.")
@click.option(
    "--revocation",
    type=click.Choice(["hard", "soft", "off"]),
    default="soft",
    show_default=True,
    help="OCSP, then CRL; hard: unknown status is a problem.",
)
@click.option("--offline", is_flag=True, help="No network (no OCSP, CRL or AIA fetching).")
@click.option("--at", "at", metavar="TIME", help="Check as of this ISO 8601 time.")
@click.option(
    "--warn-days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Exit 7 (Nagios WARNING) when a certificate expires within N days.",
)
@click.option("--nagios", is_flag=True, help="Print one monitoring status line; exit 0-3.")
@click.option(
    "--audit-log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Audit log (default: $XDG_STATE_HOME/signkit/audit.jsonl).",
)
@click.option("--no-audit", is_flag=True, help="Do not write the audit log.")
@token_options
@key_options
@output_options
def check(**options: Any) -> None:
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
    out = Output.from_options(options)
    argv = tuple(sys.argv[1:])
    o = options

    def body() -> int:
        from signkit import __version__
        from signkit.audit.log import AuditLog, default_audit_path, run_identity
        from signkit.pki.anchors import TrustSpec, anchors_from, require_anchors, resolve_anchor
        from signkit.verify import certcheck
        from signkit.verify.policy import VerifyPolicy

        from .tokenspec import build_token_spec
        from .verify import parse_time

        trust_paths = tuple(resolve_anchor(v) for v in o["trust"])
        require_anchors(TrustSpec(anchors=trust_paths))
        policy = VerifyPolicy(
            anchors=anchors_from(trust_paths, system=o["trust_system"]),
            revocation=o["revocation"],
            offline=o["offline"],
            at=parse_time(o["at"]) if o["at"] else None,
        )
        # --module alone (often from SIGNKIT_MODULE) does not make the token a source.
        token_chosen = any(
            o[k] is not None
            for k in (
                "token_label",
                "token_serial",
                "slot",
                "key_uri",
                "key_label",
                "key_id",
                "cert_fingerprint",
            )
        )
        sources: list[tuple[str, bytes, list[bytes]]] = []
        sources += certcheck.certificates_from_files(list(o["files"]))
        sources += certcheck.certificates_from_documents(list(o["documents"]))
        if token_chosen or not (o["files"] or o["documents"]):
            spec = build_token_spec(
                module=o["module"],
                token_label=o["token_label"],
                token_serial=o["token_serial"],
                slot=o["slot"],
                key_label=o["key_label"],
                key_id=o["key_id"],
                cert_fingerprint=o["cert_fingerprint"],
                key_uri=o["key_uri"],
            )
            sources += certcheck.certificates_from_token(spec)
        if not policy.anchors:
            out.warn("no trust anchors (--trust): every chain is reported untrusted")
        statuses = [
            certcheck.check_certificate(
                der, others, policy, source=source, warn_days=o["warn_days"]
            )
            for source, der, others in sources
        ]
        if not o["no_audit"]:
            audit = AuditLog(o["audit_log"] or default_audit_path())
            audit.add(
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
            audit.close()
        if out.json:
            out.emit_json(
                {
                    "schema_version": 1,
                    "command": "cert check",
                    "warn_days": o["warn_days"],
                    "worst": certcheck.worst_state(statuses),
                    "exit_code": certcheck.exit_code(statuses),
                    "certificates": [s.to_json() for s in statuses],
                }
            )
        if o["nagios"]:
            code, line = certcheck.nagios(statuses)
            click.echo(line)
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
