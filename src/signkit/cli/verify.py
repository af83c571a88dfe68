"""`signkit verify`: PDFs and XML in bulk, EN 319 102-1 verdicts, no token needed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .context import Output, run_command
from .options import limits_from, limits_options, output_options


def parse_time(value: str) -> datetime:
    """ISO 8601 (a date alone means its midnight UTC); naive times are UTC."""
    from signkit.errors import UsageError

    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            "--at must be an ISO 8601 time, e.g. 2026-03-12T09:41:07+07:00", subject=value
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _table(out: Output, report: Any) -> None:
    from rich.table import Table

    from signkit.i18n import format_datetime, t

    def when(value: str | None) -> str:
        return format_datetime(datetime.fromisoformat(value)) if value else ""

    console = out.console()
    table = Table(box=None, pad_edge=False, show_header=True)
    for col in ("verdict", "input", "signer", "level", "time", "why"):
        table.add_column(t(col), overflow="fold")
    for d in report.documents:
        if d.verdict is None:
            table.add_row(d.status.value.upper(), d.input, "", "", "", t(d.error_message or ""))
            continue
        v = d.verdict
        sigs = v["signatures"] or [None]
        for n, s in enumerate(sigs):
            head = v["indication"] if n == 0 else ""
            if s is None:
                table.add_row(head, d.input, "", "", "", t(v["sentence"]))
                continue
            sub = "" if s["sub_indication"] == "OK" else f"{s['sub_indication']}: "
            why = sub + t(s["sentence"]) + "".join(f" ({t(w)})" for w in s["warnings"])
            if s["indication"] == "PASSED" and not out.verbose:
                why = "; ".join(t(w) for w in s["warnings"])
            table.add_row(
                head
                if len(sigs) == 1
                else f"{head}{' ' if head else ''}#{n + 1} {s['indication']}",
                d.input if n == 0 else "",
                s["signer_subject"] or "",
                s["level"] or "",
                when(s["timestamp_time"] or s["claimed_signing_time"]),
                why,
            )
    console.print(table)


def _summary(out: Output, report: Any) -> None:
    if out.quiet:
        return
    if report.dry_run:
        out.info(f"dry run: {len(report.documents)} document(s) would be verified")
        for d in report.documents:
            out.info(f"  {d.input}")
        return
    _table(out, report)
    counts = report.verdicts()
    unreadable = sum(1 for d in report.documents if d.status.value == "failed")
    skipped = sum(1 for d in report.documents if d.status.value == "not-attempted")
    out.info(
        f"{counts['PASSED']} passed, {counts['INDETERMINATE']} indeterminate, "
        f"{counts['FAILED']} failed"
        + (f", {unreadable} unreadable" if unreadable else "")
        + (f", {skipped} not attempted" if skipped else "")
        + f" (of {len(report.documents)})"
    )


@click.command("verify")
@click.argument("inputs", nargs=-1, metavar="INPUT...")
@click.option("-r", "--recursive", is_flag=True, help="Descend into directories.")
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV or JSON Lines with an 'input' column.",
)
@click.option(
    "--trust",
    "trust",
    multiple=True,
    metavar="PATH|NAME",
    help="Trust anchors: a PEM/DER/PKCS#7 file or directory, or an installed bundle by name "
    "(vn-gov, vn-public); repeatable. Nothing else is trusted.",
)
@click.option("--trust-system", is_flag=True, help="Also trust the operating system's CA store.")
@click.option(
    "--intermediates",
    multiple=True,
    type=click.Path(path_type=Path),
    metavar="FILE|DIR",
    help="Untrusted CA certificates for building chains (PEM/DER/PKCS#7); repeatable.",
)
@click.option(
    "--revocation",
    type=click.Choice(["hard", "soft", "off"]),
    default="soft",
    show_default=True,
    help="hard: unknown status is INDETERMINATE; soft: reported, verdict unchanged; off.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="No network (no AIA, OCSP, CRL): only what the document embeds (LTV data).",
)
@click.option("--at", "at", metavar="TIME", help="Validate as of this ISO 8601 time.")
@click.option(
    "--insecure-allow-weak",
    is_flag=True,
    help="Accept SHA-1 and RSA keys under 2048 bits (still reported).",
)
@click.option(
    "--extract-revision",
    type=click.IntRange(min=1),
    metavar="N",
    help="Write the revision signature N covers (what was signed) to -o FILE.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Output of --extract-revision.",
)
@click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes (default: CPUs)."
)
@click.option("--fail-fast", is_flag=True, help="Stop at the first document not PASSED.")
@click.option("--dry-run", is_flag=True, help="List the documents; verify nothing.")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the JSON report here too.",
)
@click.option(
    "--report-format",
    type=click.Choice(["json", "etsi"]),
    default="json",
    show_default=True,
    help="--report as signkit's JSON, or as an ETSI TS 119 102-2 XML validation report "
    "(PDF signatures).",
)
@click.option(
    "--audit-log",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Audit log (default: $XDG_STATE_HOME/signkit/audit.jsonl).",
)
@click.option("--no-audit", is_flag=True, help="Do not write the audit log (noted on stderr).")
@limits_options
@output_options
def command(**options: Any) -> None:
    """Verify signed PDFs and XML in bulk.

    Each signature and each document gets an ETSI EN 319 102-1 verdict.

    \b
    Verdicts: PASSED, INDETERMINATE (sub-indication says what is missing),
    FAILED (altered, invalid signature value, forbidden change after signing).
    Exit 0 all PASSED, 1 any FAILED or unreadable, 6 worst INDETERMINATE.
    \b
    Examples:
      signkit verify inbox/*.pdf --trust /etc/signkit/roots/
      signkit verify -r archive --trust roots.pem --offline --json > verdicts.json
      signkit verify old.pdf --trust roots.pem --at 2024-05-01T00:00:00+07:00
      signkit verify signed.pdf --extract-revision 1 -o as-signed.pdf
    """
    out = Output.from_options(options)
    argv = tuple(sys.argv[1:])

    def body() -> int:
        from signkit.audit.log import default_audit_path
        from signkit.errors import ConfigError, UsageError
        from signkit.jobs.verify_job import VerifyJobSpec, VerifyReport, plan, verify_documents
        from signkit.pki.anchors import (
            TrustSpec,
            anchors_from,
            load_certificates,
            require_anchors,
            resolve_anchor,
        )
        from signkit.verify.policy import VerifyPolicy

        o = options
        if not o["inputs"] and not o["manifest"]:
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE", hint="signkit verify --help"
            )
        if o["extract_revision"] is not None:
            return _extract(out, o)
        if o["output"] is not None:
            raise UsageError("-o/--output goes with --extract-revision")
        etsi = o["report_format"] == "etsi"
        if etsi:
            from signkit.verify.etsi import available

            if o["report_path"] is None:
                raise UsageError("--report-format etsi writes the --report FILE: give one")
            available()
        trust_paths = tuple(resolve_anchor(v) for v in o["trust"])
        require_anchors(TrustSpec(anchors=trust_paths))
        anchors = anchors_from(trust_paths, system=o["trust_system"])
        if o["trust_system"] and len(anchors) == len(anchors_from(trust_paths, system=False)):
            raise ConfigError("--trust-system: no operating-system CA store found")
        policy = VerifyPolicy(
            anchors=anchors,
            intermediates=tuple(dict.fromkeys(load_certificates(o["intermediates"]))),
            revocation=o["revocation"],
            offline=o["offline"],
            at=parse_time(o["at"]) if o["at"] else None,
            allow_weak=o["insecure_allow_weak"],
            etsi=etsi,
        )
        if o["no_audit"]:
            out.warn("audit log disabled (--no-audit): this run leaves no audit record")
            audit_path = None
        else:
            audit_path = o["audit_log"] or default_audit_path()
        spec = VerifyJobSpec(
            inputs=tuple(o["inputs"]),
            recursive=o["recursive"],
            manifest=o["manifest"],
            policy=policy,
            jobs=o["jobs"] or 0,
            fail_fast=o["fail_fast"],
            dry_run=o["dry_run"],
            audit_path=audit_path,
            command_line=argv,
            limits=limits_from(o),
        )
        if o["report_path"] is not None:
            from signkit.jobs.outputs import check_report_path

            check_report_path(o["report_path"])
        tasks = plan(spec)
        report = VerifyReport(command="verify")
        progress = _Progress(out, 0 if spec.dry_run else len(tasks))
        try:
            verify_documents(spec, events=progress, report=report, tasks=tasks, warn=out.warn)
        except KeyboardInterrupt as exc:
            # Stopped (Ctrl-C, SIGTERM): what was judged is still reported.
            progress.close()
            report.interrupted = int(getattr(exc, "signum", 2))
            if o["report_path"] is not None and not etsi:
                report.write(o["report_path"])
            if out.json:
                out.emit_json(report.to_json())
            _summary(out, report)
            raise
        finally:
            progress.close()
        if o["report_path"] is not None and etsi:
            from signkit.verify.etsi import write_report

            write_report(report.etsi, o["report_path"])
            if any(d.verdict and d.verdict["format"] == "xml" for d in report.documents):
                out.warn("the ETSI report covers PDF signatures only; XML verdicts are in --json")
        elif o["report_path"] is not None:
            report.write(o["report_path"])
        if out.json:
            out.emit_json(report.to_json())
        _summary(out, report)
        return report.exit_code()

    run_command(out, body)


class _Progress:
    """A progress bar on a terminal (only for batches)."""

    def __init__(self, out: Output, total: int) -> None:
        from .sign import _Progress as Bar

        self.bar = Bar(out, total if total > 1 else 0)

    def document_done(self, result: Any) -> None:
        self.bar.document_done(result)

    def close(self) -> None:
        self.bar.close()


def _extract(out: Output, o: dict[str, Any]) -> int:
    from signkit.errors import InputError, OutputError, UsageError
    from signkit.fsio import atomic_write
    from signkit.verify.pdf import extract_revision

    if len(o["inputs"]) != 1 or o["output"] is None:
        raise UsageError("--extract-revision N takes one PDF and -o FILE")
    source, target = Path(o["inputs"][0]), o["output"]
    if not source.is_file():
        raise InputError("no such file", subject=str(source))
    if target.exists():
        raise OutputError("output exists; choose another -o", subject=str(target))
    data = extract_revision(source, o["extract_revision"])
    try:
        atomic_write(target, data)
    except OSError as exc:
        raise OutputError(f"cannot write ({exc.strerror or exc})", subject=str(target)) from None
    out.info(f"{target}: the revision signature {o['extract_revision']} covers ({len(data)} bytes)")
    if out.json:
        out.emit_json({"input": str(source), "output": str(target), "bytes": len(data)})
    return 0
