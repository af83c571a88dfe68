"""`signkit extend` as a job: raise signatures (PDF, XML, CMS) to a higher
baseline level, or renew archive time-stamps, on the batch engine.

No token: the engine runs without its sign stage. Everything else is the
signing pipeline's: discovery, planning, input locks, temp files created
exclusively, audit records durable before an output is published, resume
(a document already at the level is skipped), stop signals, reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from signkit.audit.log import AuditSpec
from signkit.errors import SignkitError, UsageError
from signkit.formats import extend
from signkit.formats.plugin import OutputState, PlannedDocLike, Stages
from signkit.fsio import Writer
from signkit.jobs.engine import EngineSpec, Events, run_batch
from signkit.jobs.inputs import discover, without_detached_data
from signkit.jobs.outputs import (
    OutputSpec,
    PlannedDoc,
    check_report_path,
    check_writable,
    plan_outputs,
    remove_stale_temp_files,
)
from signkit.jobs.report import BatchReport, DocumentResult, Status
from signkit.jobs.runlog import RunAudit
from signkit.pki.anchors import TrustSpec, require_anchors
from signkit.pki.timestamps import TsaSpec, request_timestamp
from signkit.workers import start_pool

EXTENSIONS = (".pdf", ".xml", ".p7s", ".p7m")
MANIFEST_COLUMNS = frozenset({"level"})


@dataclass(frozen=True, kw_only=True)
class ExtendJobSpec:
    """Everything `signkit extend` was asked to do."""

    inputs: tuple[str, ...]
    """Files, directories, globs."""
    recursive: bool = False
    """Descend into directories."""
    manifest: Path | None = None
    """CSV/JSONL manifest (columns: input, output, level)."""
    level: str = "B-LTA"
    """The level to raise signatures to."""
    renew_within: timedelta | None = None
    """Archive renewal window (B-LTA documents whose newest time-stamp's TSA
    certificate ends within it get a new archive time-stamp)."""
    outputs: OutputSpec = field(default_factory=lambda: OutputSpec(in_place=True, suffix=""))
    """Where extended documents go (default: in place, replaced atomically)."""
    engine: EngineSpec = field(default_factory=EngineSpec)
    """Batch behaviour."""
    trust: TrustSpec = field(default_factory=TrustSpec)
    """Anchors and revocation policy for the validation data gathered."""
    tsa: TsaSpec | None = None
    """Time-stamping authority."""
    pdf_password: str | None = field(default=None, repr=False)
    """Opens the PDFs that need a password (see ExtendConfig.pdf_password)."""
    jobs: int = 0
    """Worker processes (0 = one per CPU)."""
    dry_run: bool = False
    """Plan only."""
    report_path: Path | None = None
    """Where the machine report will be written (checked first)."""
    audit_path: Path | None = None
    """Audit log (None = no audit)."""
    audit: AuditSpec | None = None
    """Seal, time-stamp, anchor, syslog and rotation of the audit log."""
    command_line: tuple[str, ...] = ()
    """Non-secret options, for the audit run record."""
    audit_write: Writer | None = None
    """Replaces ``os.write`` for the audit log (a full disk, in tests)."""


@dataclass(frozen=True)
class ExtendFormat:
    """The documents of an extend run, whatever their format."""

    config: extend.ExtendConfig
    level: str

    name = "extend"

    def resolve(self, overrides: Mapping[str, str]) -> extend.ExtendOptions:
        level = overrides.get("level", self.level)
        if level not in extend.LEVELS[1:]:
            raise UsageError("level must be one of B-T, B-LT, B-LTA", subject=level)
        return extend.ExtendOptions(level=level)

    def stages(self) -> Stages:
        def make_item(index: int, planned: PlannedDocLike, temp: Path) -> extend.ExtendItem:
            return extend.ExtendItem(
                index=index,
                input=str(planned.input),
                temp=str(temp),
                level=planned.options.level,
                config=self.config,
            )

        return Stages(
            prepare=extend.worker_prepare,  # type: ignore[arg-type]
            finish=extend.worker_finish,  # type: ignore[arg-type]
            make_item=make_item,
        )

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """An output that already exists is left alone (--force replaces it);
        in place, the document's own level decides (in the prepare stage)."""
        return OutputState.FOREIGN


def plan(spec: ExtendJobSpec) -> list[PlannedDoc]:
    """Discover the signed documents and decide their outputs."""
    tasks = discover(
        spec.inputs,
        recursive=spec.recursive,
        extensions=EXTENSIONS,
        suffix=spec.outputs.suffix
        if not (spec.outputs.output_dir or spec.outputs.in_place)
        else "",
        manifest=spec.manifest,
        allowed_columns=MANIFEST_COLUMNS,
    )
    tasks = without_detached_data(tasks)
    if not tasks:
        raise UsageError("no input documents", hint="name files, directories or --manifest")
    return plan_outputs(tasks, spec.outputs, _format(spec).resolve)


def _format(spec: ExtendJobSpec) -> ExtendFormat:
    config = extend.ExtendConfig(
        tsa=spec.tsa,
        trust=spec.trust,
        renew_within=spec.renew_within,
        pdf_password=spec.pdf_password,
    )
    return ExtendFormat(config=config, level=spec.level)


def extend_documents(
    spec: ExtendJobSpec,
    *,
    warn: Callable[[str], None],
    events: Events,
    report: BatchReport,
    docs: list[PlannedDoc] | None = None,
) -> BatchReport:
    """Run the whole job; a run-level error is recorded in the report and raised."""
    fmt = _format(spec)
    fmt.resolve({})
    report.level = spec.level
    if docs is None:
        docs = plan(spec)
    if spec.dry_run:
        report.dry_run = True
        report.documents += [
            DocumentResult(
                input=str(d.input), output=str(d.output), level=d.options.level, options={}
            )
            for d in docs
        ]
        return report
    run_audit: RunAudit | None = None
    try:
        if spec.tsa is None:
            raise UsageError("extend needs a time-stamping authority (--tsa URL)")
        require_anchors(spec.trust)
        if spec.report_path is not None:
            check_report_path(spec.report_path)
        directories = {d.output.parent for d in docs}
        for directory in directories:
            check_writable(directory)
        for stale in remove_stale_temp_files(directories):
            warn(f"removed a temp file left by an interrupted run: {stale}")
        # Fail before any document is touched when the TSA does not answer.
        request_timestamp(spec.tsa, b"signkit preflight")
        run_audit = RunAudit(
            spec.audit_path,
            spec.audit,
            command="extend",
            options=spec.command_line,
            warn=warn,
            write=spec.audit_write,
        )
        run_audit.run_start_without_token(report, level=spec.level, tsa=spec.tsa.url)
        executor = start_pool(
            spec.jobs,
            documents=len(docs),
            warm_first=("signkit.formats.extend", "worker_warmup"),
        )
        with executor:
            run_batch(
                docs=docs,
                plugin=fmt,
                stages=fmt.stages(),
                sign=None,
                executor=executor,
                report=report,
                audit=run_audit.log,
                events=events,
                spec=spec.engine,
                signer_sha256="",
                workers=spec.jobs or os.cpu_count() or 2,
            )
    except SignkitError as exc:
        report.run_error = exc
        listed = {r.input for r in report.documents}
        report.documents += [
            DocumentResult(
                input=str(d.input),
                output=str(d.output),
                status=Status.NOT_ATTEMPTED,
                level=d.options.level,
                reason=f"run stopped: {exc.message}",
            )
            for d in docs
            if str(d.input) not in listed
        ]
        raise
    finally:
        if run_audit is not None:
            run_audit.run_end(report)
    return report
