"""`signkit verify`: PDFs and XML in bulk, EN 319 102-1 verdicts, no token needed."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import (
    AuditOptions,
    ConfigOptions,
    InputOptions,
    LimitsOptions,
    OutputOptions,
    ReportOptions,
    TrustOptions,
    ValidationOptions,
)


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


app = new_app("verify", "Verify signed PDFs and XML in bulk.")


@command(app, "verify")
@grouped
def verify(
    *,
    inputs: InputOptions,
    trust: TrustOptions,
    validation: ValidationOptions,
    insecure_allow_weak: Annotated[
        bool,
        typer.Option(
            "--insecure-allow-weak",
            help="Accept SHA-1 and RSA keys under 2048 bits (still reported).",
        ),
    ] = False,
    extract_revision: Annotated[
        int | None,
        typer.Option(
            "--extract-revision",
            min=1,
            metavar="N",
            help="Write the revision signature N covers (what was signed) to -o FILE.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", metavar="FILE", dir_okay=False, help="Output of --extract-revision."
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=1, metavar="N", help="Worker processes (default: CPUs)."),
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first document not PASSED.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the documents; verify nothing.")
    ] = False,
    report: ReportOptions,
    report_format: Annotated[
        Literal["json", "etsi"],
        typer.Option(
            "--report-format",
            help="--report as signkit's JSON, or as an ETSI TS 119 102-2 XML validation report "
            "(PDF signatures).",
        ),
    ] = "json",
    audit: AuditOptions,
    limits: LimitsOptions,
    config: ConfigOptions,
    output_options: OutputOptions,
) -> None:
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
    out = Output.of(output_options)
    argv = tuple(sys.argv[1:])

    def body() -> int:
        from signkit.audit.log import default_audit_path
        from signkit.errors import ConfigError, UsageError
        from signkit.jobs.verify_job import VerifyJobSpec, VerifyReport, plan, verify_documents
        from signkit.pki.anchors import TrustSpec, anchors_from, require_anchors, resolve_anchor
        from signkit.verify.policy import VerifyPolicy

        if not inputs.given():
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE", hint="signkit verify --help"
            )
        if extract_revision is not None:
            return _extract(out, inputs, extract_revision, output)
        if output is not None:
            raise UsageError("-o/--output goes with --extract-revision")
        etsi = report_format == "etsi"
        if etsi:
            from signkit.verify.etsi import available

            if report.report_path is None:
                raise UsageError("--report-format etsi writes the --report FILE: give one")
            available()
        trust_paths = tuple(resolve_anchor(v) for v in trust.trust or ())
        require_anchors(TrustSpec(anchors=trust_paths))
        anchors = anchors_from(trust_paths, system=validation.trust_system)
        system = validation.trust_system
        if system and len(anchors) == len(anchors_from(trust_paths, system=False)):
            raise ConfigError("--trust-system: no operating-system CA store found")
        policy = VerifyPolicy(
            anchors=anchors,
            intermediates=validation.intermediate_certificates(),
            revocation=trust.revocation,
            offline=validation.offline,
            at=parse_time(validation.at) if validation.at else None,
            allow_weak=insecure_allow_weak,
            etsi=etsi,
        )
        if audit.no_audit:
            out.warn("audit log disabled (--no-audit): this run leaves no audit record")
            audit_path = None
        else:
            audit_path = audit.audit_log or default_audit_path()
        spec = VerifyJobSpec(
            inputs=tuple(inputs.inputs or ()),
            recursive=inputs.recursive,
            manifest=inputs.manifest,
            policy=policy,
            jobs=jobs or 0,
            fail_fast=fail_fast,
            dry_run=dry_run,
            audit_path=audit_path,
            command_line=argv,
            limits=limits.limits(),
        )
        report_path = report.report_path
        if report_path is not None:
            from signkit.jobs.outputs import check_report_path

            check_report_path(report_path)
        tasks = plan(spec)
        results = VerifyReport(command="verify")
        progress = _Progress(out, 0 if spec.dry_run else len(tasks))
        try:
            verify_documents(spec, events=progress, report=results, tasks=tasks, warn=out.warn)
        except KeyboardInterrupt as exc:
            # Stopped (Ctrl-C, SIGTERM): what was judged is still reported.
            progress.close()
            results.interrupted = int(getattr(exc, "signum", 2))
            if report_path is not None and not etsi:
                results.write(report_path)
            if out.json:
                out.emit_json(results.to_json())
            _summary(out, results)
            raise
        finally:
            progress.close()
        if report_path is not None and etsi:
            from signkit.verify.etsi import write_report

            write_report(results.etsi, report_path)
            if any(d.verdict and d.verdict["format"] == "xml" for d in results.documents):
                out.warn("the ETSI report covers PDF signatures only; XML verdicts are in --json")
        elif report_path is not None:
            results.write(report_path)
        if out.json:
            out.emit_json(results.to_json())
        _summary(out, results)
        return results.exit_code()

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


def _extract(out: Output, inputs: InputOptions, revision: int, target: Path | None) -> int:
    from signkit.errors import InputError, OutputError, UsageError
    from signkit.fsio import atomic_write
    from signkit.verify.pdf import extract_revision

    if not inputs.inputs or len(inputs.inputs) != 1 or target is None:
        raise UsageError("--extract-revision N takes one PDF and -o FILE")
    source = Path(inputs.inputs[0])
    if not source.is_file():
        raise InputError("no such file", subject=str(source))
    if target.exists():
        raise OutputError("output exists; choose another -o", subject=str(target))
    data = extract_revision(source, revision)
    try:
        atomic_write(target, data)
    except OSError as exc:
        raise OutputError(f"cannot write ({exc.strerror or exc})", subject=str(target)) from None
    out.info(f"{target}: the revision signature {revision} covers ({len(data)} bytes)")
    if out.json:
        out.emit_json({"input": str(source), "output": str(target), "bytes": len(data)})
    return 0
