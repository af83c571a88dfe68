"""`signkit extend`: raise signatures to B-T/B-LT/B-LTA and renew archive
time-stamps, in bulk, without a token."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import (
    AuditOptions,
    AuditSealOptions,
    ConfigOptions,
    InputOptions,
    LimitsOptions,
    OutputOptions,
    PdfPasswordFile,
    ReportOptions,
    TrustOptions,
    TsaOptions,
)

_WINDOW = re.compile(r"(\d+)\s*([dwy]?)")


def parse_window(value: str) -> timedelta:
    """--renew-within: days (180d or 180), weeks (26w) or years (1y = 365 days)."""
    from signkit.errors import UsageError

    match = _WINDOW.fullmatch(value.strip().lower())
    if match is None:
        raise UsageError("--renew-within takes a number of days, e.g. 180d", subject=value)
    count, unit = int(match.group(1)), match.group(2) or "d"
    return timedelta(days=count * {"d": 1, "w": 7, "y": 365}[unit])


def _summary(out: Output, report: Any) -> None:
    """The skipped documents (all with -v) listed on stdout, unless --json
    stands in for them; the failed ones, and those another run holds, on
    stderr at error priority; then the counts on stderr (kept with -q)."""
    from signkit.cli.sign_run import documents_table
    from signkit.i18n import t

    totals = report.totals()
    failed = [d for d in report.documents if d.status.value == "failed"]
    failed += report.left_for_later()
    shown = {id(d) for d in failed}
    listed = [
        d
        for d in report.documents
        if d.status.value == "skipped" or (out.verbose and id(d) not in shown)
    ]
    if listed and not out.json:
        out.table(documents_table(listed, {"signed": "extended"}))
    if failed:
        out.failures(documents_table(failed))
    if report.dry_run:
        out.summary(t("dry run: {planned} planned (of {total})").format(**totals))
        return
    line = t(
        "{signed} extended, {skipped} skipped, {failed} failed, "
        "{not_attempted} not attempted (of {total})"
    )
    out.summary(line.format(**{k.replace("-", "_"): v for k, v in totals.items()}))


app = new_app(
    "extend", "Raise existing signatures without re-signing (PDF, XML, CMS); renew archives."
)


@command(app, "extend")
@grouped
def extend(
    *,
    inputs: InputOptions,
    level: Annotated[
        Literal["B-T", "B-LT", "B-LTA"],
        typer.Option("--level", help="Raise every signature to this level."),
    ] = "B-LTA",
    renew_within: Annotated[
        str | None,
        typer.Option(
            "--renew-within",
            metavar="DAYS",
            help="Archive renewal: add an archive time-stamp to B-LTA documents whose newest "
            "time-stamp's TSA certificate ends within this window (180d, 26w, 1y) or whose "
            "algorithms are weak; the others are skipped and listed.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            dir_okay=False,
            help="Write the extended document here (single input) instead of in place.",
        ),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            metavar="DIR",
            file_okay=False,
            help="Write extended documents here, mirroring the input tree, instead of in place.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing outputs (-o, --output-dir).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first failed document.")
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=1, metavar="N", help="Worker processes (default: CPUs)."),
    ] = None,
    password_file: PdfPasswordFile = None,
    tsa: TsaOptions,
    trust: TrustOptions,
    report: ReportOptions,
    audit: AuditOptions,
    seal: AuditSealOptions,
    limits: LimitsOptions,
    config: ConfigOptions,
    output_options: OutputOptions,
) -> None:
    """Raise existing signatures without re-signing (PDF, XML, CMS); renew archives.

    B-B -> B-T adds a time-stamp, -> B-LT the chains and revocation data,
    -> B-LTA an archive (document) time-stamp. Signed bytes never change:
    PDFs get incremental updates, XAdES and CAdES gain unsigned properties.
    Documents are replaced in place, atomically, once their audit record is
    durable (-o or --output-dir to write elsewhere). No token is needed.

    \b
    Examples:
      signkit extend signed/*.pdf --tsa http://tsa.example --trust roots/
      signkit extend -r archive --level B-LTA --renew-within 180d --tsa http://tsa.example
    """
    out = Output.of(output_options)
    argv = tuple(sys.argv[1:])

    def body() -> int:
        from signkit.audit.log import default_audit_path
        from signkit.errors import SignkitError, UsageError
        from signkit.jobs.engine import EngineSpec
        from signkit.jobs.extend_job import ExtendJobSpec, extend_documents, plan
        from signkit.jobs.outputs import OutputSpec
        from signkit.jobs.report import BatchReport
        from signkit.pki.anchors import TrustSpec, resolve_anchor
        from signkit.pki.timestamps import TsaSpec

        from .sign_run import pdf_password, read_secret_file, secret_env

        if not inputs.given():
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE", hint="signkit extend --help"
            )
        tsa_spec = None
        if tsa.tsa_url:
            password = read_secret_file(tsa.tsa_password_file, "TSA password")
            tsa_spec = TsaSpec(
                url=tsa.tsa_url,
                policy=tsa.tsa_policy,
                nonce=not tsa.tsa_no_nonce,
                username=tsa.tsa_user,
                password=password or secret_env("SIGNKIT_TSA_PASSWORD"),
            )
        if audit.no_audit:
            out.warn("audit log disabled (--no-audit): this run leaves no audit record")
            audit_path = None
        else:
            audit_path = audit.audit_log or default_audit_path()
        in_place = output is None and output_dir is None
        spec = ExtendJobSpec(
            inputs=tuple(inputs.inputs or ()),
            recursive=inputs.recursive,
            manifest=inputs.manifest,
            level=level,
            renew_within=parse_window(renew_within) if renew_within else None,
            outputs=OutputSpec(output=output, output_dir=output_dir, in_place=in_place, suffix=""),
            engine=EngineSpec(fail_fast=fail_fast, force=force, limits=limits.limits()),
            trust=TrustSpec(
                anchors=tuple(resolve_anchor(str(v)) for v in trust.trust or ()),
                revocation=trust.revocation,
            ),
            tsa=tsa_spec,
            pdf_password=pdf_password(password_file),
            jobs=jobs or 0,
            dry_run=dry_run,
            report_path=report.report_path,
            audit_path=audit_path,
            audit=seal.spec(),
            command_line=argv,
        )
        results = BatchReport(command="extend")

        class Events:
            def document_done(self, result: Any) -> None:
                return None

        def publish() -> None:
            for warning in results.warnings:
                out.warn(warning)
            path = report.report_path
            if path is not None:
                with results.write(path) as written:
                    if out.json:
                        out.emit_report_file(written)
            elif out.json:
                out.emit_json_pieces(results.pieces())
            _summary(out, results)

        try:
            extend_documents(spec, warn=out.warn, events=Events(), report=results, docs=plan(spec))
        except SignkitError as exc:
            results.run_error = results.run_error or exc
            publish()
            raise
        except KeyboardInterrupt as exc:
            results.interrupted = int(getattr(exc, "signum", 2))
            publish()
            raise
        publish()
        return results.exit_code()

    run_command(out, body)
