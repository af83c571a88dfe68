"""`sign pdf` as a job: discover, plan, check the signer, then run the engine."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from signkit.audit.log import AuditSpec
from signkit.errors import SignkitError, UsageError
from signkit.formats import pdf
from signkit.formats.pdf_presets import get_preset
from signkit.jobs.engine import EngineSpec, Events, SignFn, Stages, run_batch
from signkit.jobs.inputs import discover
from signkit.jobs.outputs import (
    OutputSpec,
    PlannedDoc,
    check_writable,
    plan_outputs,
    remove_stale_temp_files,
)
from signkit.jobs.report import BatchReport, Status
from signkit.jobs.runlog import RunAudit
from signkit.startup import imports_without_gc
from signkit.timestamps import TsaSpec, request_timestamp
from signkit.tokens.access import TokenSpec, open_signing_key
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import SignatureScheme
from signkit.tokens.pin import PinIO
from signkit.trust import TrustSpec, check_signer, ltv_material, require_anchors
from signkit.trust import preload as trust_preload
from signkit.workers import start_pool


@dataclass(frozen=True, kw_only=True)
class PdfJobSpec:
    """Everything `signkit sign pdf` was asked to do."""

    inputs: tuple[str, ...]
    """Files, directories, globs."""
    recursive: bool = False
    """Descend into directories."""
    manifest: Path | None = None
    """CSV/JSONL manifest."""
    outputs: OutputSpec = field(default_factory=OutputSpec)
    """Output naming."""
    engine: EngineSpec = field(default_factory=EngineSpec)
    """Batch behaviour."""
    token: TokenSpec = field(default_factory=TokenSpec)
    """Token, key and PIN."""
    trust: TrustSpec = field(default_factory=TrustSpec)
    """Anchors and revocation policy for the pre-signing check."""
    options: pdf.PdfDocOptions = field(default_factory=pdf.PdfDocOptions)
    """Default signature settings (manifest rows override)."""
    tsa: TsaSpec | None = None
    """Time-stamping authority for B-T and above."""
    digest_algorithm: str = "sha256"
    """Message digest."""
    pss: bool = False
    """RSASSA-PSS instead of PKCS#1 v1.5 for RSA keys."""
    password: str | None = field(default=None, repr=False)
    """Password of encrypted input PDFs."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """Zone of the signing time shown in appearances and /M."""
    jobs: int = 0
    """Worker processes (0 = one per CPU)."""
    dry_run: bool = False
    """Plan only."""
    audit_path: Path | None = None
    """Audit log (None = no audit)."""
    audit: AuditSpec | None = None
    """Seal, time-stamp, anchor, syslog and rotation of the audit log (None = defaults)."""
    command_line: tuple[str, ...] = ()
    """Non-secret options, for the audit run record."""
    sign_hook: Callable[[SignFn], SignFn] | None = None
    """Wraps the token's sign call (fault injection in tests, latency in benchmarks)."""


def plan(spec: PdfJobSpec) -> list[PlannedDoc]:
    """Discover inputs and decide outputs (no token needed)."""
    tasks = discover(
        spec.inputs,
        recursive=spec.recursive,
        extensions=pdf.EXTENSIONS,
        suffix=spec.outputs.suffix
        if not (spec.outputs.output_dir or spec.outputs.in_place)
        else "",
        manifest=spec.manifest,
        allowed_columns=pdf.OVERRIDABLE,
    )
    if not tasks:
        raise UsageError("no input documents", hint="name files, directories or --manifest")
    for task in tasks:
        pdf.resolve_options(spec.options, task.options)  # validate every row up front
    return plan_outputs(tasks, spec.outputs)


def _pdf_item(
    spec: PdfJobSpec, config: pdf.PdfBatchConfig
) -> Callable[[int, PlannedDoc, Path], pdf.PrepareItem]:
    def make(index: int, planned: PlannedDoc, temp: Path) -> pdf.PrepareItem:
        return pdf.PrepareItem(
            index=index,
            input=str(planned.task.input),
            temp=str(temp),
            options=pdf.resolve_options(spec.options, planned.task.options),
            config=config,
        )

    return make


def _expand_passes(spec: PdfJobSpec, docs: list[PlannedDoc]) -> list[list[PlannedDoc]]:
    """Documents per signing pass: a composite preset (nd30-number-date) puts one
    signature per pass on the same document, the later ones in place on the output."""
    first: list[PlannedDoc] = []
    later: dict[int, list[PlannedDoc]] = {}
    for d in docs:
        opts = pdf.resolve_options(spec.options, d.task.options)
        steps = get_preset(opts.preset).passes if opts.preset is not None else ()
        if not steps:
            first.append(d)
            continue
        for k, name in enumerate(steps):
            task = replace(d.task, options={**d.task.options, "preset": name})
            if k == 0:
                first.append(replace(d, task=task))
            else:
                task = replace(task, input=d.output, root=None, output=d.output)
                later.setdefault(k, []).append(
                    PlannedDoc(task=task, output=d.output, in_place=True)
                )
    return [first, *(later[k] for k in sorted(later))]


def _resume_check(spec: PdfJobSpec, docs: list[PlannedDoc]) -> Callable[[Path, str], bool]:
    """The resume test per output: by the document's field when it names one."""
    fields = {d.output: pdf.resolve_options(spec.options, d.task.options).field for d in docs}

    def check(output: Path, signer_sha256: str) -> bool:
        return pdf.signed_by(output, signer_sha256, fields.get(output))

    return check


def _name_parts(cert_der: bytes) -> tuple[str, str, str]:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(cert_der)

    def first(oid: Any) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return (
        first(NameOID.COMMON_NAME),
        first(NameOID.ORGANIZATION_NAME),
        format(cert.serial_number, "X"),
    )


def sign_pdfs(
    spec: PdfJobSpec,
    *,
    io: PinIO,
    guard: PinGuard,
    warn: Callable[[str], None],
    events: Events,
    report: BatchReport,
    docs: list[PlannedDoc] | None = None,
) -> BatchReport:
    """Run the whole job (on ``docs`` if already planned); run-level errors are
    recorded in ``report.run_error`` and raised."""
    report.level = spec.options.level
    if docs is None:
        docs = plan(spec)
    if spec.dry_run:
        report.dry_run = True
        for d in docs:
            from signkit.jobs.report import DocumentResult

            report.documents.append(
                DocumentResult(
                    input=str(d.task.input),
                    output=str(d.output),
                    status=Status.PLANNED,
                    level=spec.options.level,
                    reason="output exists" if d.output.exists() else None,
                    options=dict(d.task.options),
                )
            )
        return report
    needs_tsa = spec.options.level != "B-B" or any(
        t.task.options.get("level", "B-B") != "B-B" for t in docs
    )
    if needs_tsa and spec.tsa is None:
        raise UsageError("B-T and higher levels need --tsa URL")
    require_anchors(spec.trust)
    directories = {d.output.parent for d in docs}
    for directory in directories:
        check_writable(directory)
    for stale in remove_stale_temp_files(directories):
        warn(f"removed a temp file left by an interrupted run: {stale}")

    from signkit.fontfiles import find_serif_font

    family, font_path = find_serif_font()
    passes = _expand_passes(spec, docs)
    every = [d for pass_docs in passes for d in pass_docs]
    if any(pdf.resolve_options(spec.options, d.task.options).visible for d in every) and (
        family != "Times New Roman"
    ):
        warn(f"Times New Roman not found; visible signatures use {family} instead")

    for d in docs:
        preset = pdf.resolve_options(spec.options, d.task.options).preset
        if preset is not None and get_preset(preset).scan_checks:
            for problem in pdf.scan_warnings(d.task.input):
                warn(f"{d.task.input}: {problem} (Decree 30/2020 asks of a scanned copy)")

    run_audit = RunAudit(
        spec.audit_path, spec.audit, command="sign pdf", options=spec.command_line, warn=warn
    )
    audit = run_audit.log

    # The workers the entry point pre-started (one is importing the PDF stack
    # already), or forked now, after the validation stack is imported here
    # (they inherit it); either way before anything PKCS#11 is loaded. One
    # warms while this process opens the token and checks the signer.
    workers = spec.jobs or os.cpu_count() or 2
    with imports_without_gc():
        trust_preload(spec.trust)
    executor = start_pool(spec.jobs, warm_first=("signkit.formats.pdf", "worker_warmup"))
    try:
        with (
            executor,
            open_signing_key(
                spec.token, io=io, guard=guard, warn=warn, on_login_failure=run_audit.login_failed
            ) as key,
        ):
            signer: Any = key.signer
            if getattr(signer, "pinpad_per_signature", False):
                warn(
                    f"{key.token_name}: this key asks for the PIN before every signature; "
                    f"expect {len(docs)} PIN-pad entries for this batch"
                )
            cert_der: bytes = signer.certificate_der
            check = check_signer(cert_der, signer.chain_der, spec.trust)
            for w in check.warnings:
                warn(w)
            scheme: SignatureScheme = (
                "ecdsa" if signer.key_type == "EC" else ("pss" if spec.pss else "pkcs1v15")
            )
            signer.plan(spec.digest_algorithm, scheme)  # fail before any file is touched
            token = None
            if needs_tsa and spec.tsa is not None:
                token = request_timestamp(spec.tsa, b"signkit preflight")
            long_term = spec.options.level in ("B-LT", "B-LTA")
            ltv_certs, ocsps, crls = ltv_material(check, token if long_term else None, spec.trust)
            name, org, serial = _name_parts(cert_der)
            report.signer = {
                "subject": check.subject,
                "sha256": check.sha256,
                "serial": serial,
                "token": key.token_name,
                "not_after": check.not_after.isoformat(),
                "chain_anchor": check.anchored,
                "revocation": check.revocation,
                "revocation_evidence": check.evidence(),
            }
            run_audit.run_start(
                report, key, check, level=spec.options.level, digest=spec.digest_algorithm
            )
            from signkit.formats.cms import CmsTemplate, signature_size

            template = CmsTemplate.create(
                signer_der=cert_der,
                chain_der=check.chain[1:],
                digest_algorithm=spec.digest_algorithm,
                scheme=scheme,
            )
            allowance = pdf.TIMESTAMP_ALLOWANCE if needs_tsa else 0
            reserved = 2 * template.size_bound(
                signature_size(signer.key_type, signer.key_size), allowance
            )
            config = pdf.PdfBatchConfig(
                signer_der=cert_der,
                chain_der=check.chain[1:],
                digest_algorithm=spec.digest_algorithm,
                scheme=scheme,
                bytes_reserved=reserved,
                tsa=spec.tsa,
                ltv_certs=ltv_certs,
                ltv_ocsps=ocsps,
                ltv_crls=crls,
                timezone=spec.timezone,
                password=spec.password,
                font_path=font_path,
                signer_name=name,
                signer_org=org,
                signer_serial=serial,
            )
            make_item = _pdf_item(spec, config)

            def sign(data: bytes) -> bytes:
                return bytes(
                    signer.sign(data, digest_algorithm=spec.digest_algorithm, scheme=scheme)
                )

            if spec.sign_hook is not None:
                sign = spec.sign_hook(sign)
            for number, pass_docs in enumerate(passes):
                if number > 0:
                    # a later signature goes only on documents whose earlier one is there
                    ready = {
                        d.output
                        for d in report.documents
                        if d.status in (Status.SIGNED, Status.SKIPPED) and d.output
                    }
                    pass_docs = [d for d in pass_docs if str(d.output) in ready]
                    if not pass_docs:
                        break
                run_batch(
                    docs=pass_docs,
                    stages=Stages(
                        name="pdf",
                        prepare=pdf.worker_prepare,
                        finish=pdf.worker_finish,
                        make_item=make_item,
                        already_done=_resume_check(spec, pass_docs),
                    ),
                    sign=sign,
                    executor=executor,
                    report=report,
                    audit=audit,
                    events=events,
                    spec=spec.engine,
                    signer_sha256=check.sha256,
                    level=spec.options.level,
                    workers=workers,
                )
    except SignkitError as exc:
        report.run_error = exc
        raise
    finally:
        run_audit.run_end(report)
    return report
