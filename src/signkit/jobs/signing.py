"""The one signing job, whatever the format: plan, open the key, check the
signer, preflight the time-stamping authority, audit, run the engine.

Formats plug in through ``formats.plugin.FormatPlugin``; this module holds
every step they share, so PDF, XML and CMS batches behave alike (reports,
exit codes, dry runs, resume, audit records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from signkit.audit.log import AuditSpec
from signkit.errors import SignkitError, UsageError
from signkit.formats.plugin import FormatPlugin, SignerContext
from signkit.fsio import Writer
from signkit.jobs.engine import EngineSpec, Events, SignFn, run_batch
from signkit.jobs.inputs import Shard, discover
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
from signkit.pki.chain import check_signer
from signkit.pki.chain import preload as trust_preload
from signkit.pki.revocation import ltv_material
from signkit.pki.timestamps import TsaSpec, request_timestamp
from signkit.tokens.access import TokenSpec, open_signing_key
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import SignatureScheme
from signkit.tokens.pin import PinIO
from signkit.workers import default_workers, start_pool


@dataclass(frozen=True, kw_only=True)
class SignJobSpec:
    """Everything `signkit sign FORMAT` was asked to do."""

    format: FormatPlugin
    """The document format, carrying the job's default signature options."""
    inputs: tuple[str, ...]
    """Files, directories, globs."""
    recursive: bool = False
    """Descend into directories."""
    manifest: Path | None = None
    """CSV/JSONL manifest."""
    shard: Shard | None = None
    """Only this part of the planned documents (--shard K/N)."""
    outputs: OutputSpec = field(default_factory=OutputSpec)
    """Output naming."""
    engine: EngineSpec = field(default_factory=EngineSpec)
    """Batch behaviour."""
    token: TokenSpec = field(default_factory=TokenSpec)
    """Token, key and PIN."""
    trust: TrustSpec = field(default_factory=TrustSpec)
    """Anchors and revocation policy for the pre-signing check."""
    tsa: TsaSpec | None = None
    """Time-stamping authority for B-T and above."""
    digest_algorithm: str = "sha256"
    """Message digest."""
    pss: bool = False
    """RSASSA-PSS instead of PKCS#1 v1.5 for RSA keys."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """Zone of signing times shown to people."""
    jobs: int = 0
    """Worker processes (0 = one per CPU)."""
    dry_run: bool = False
    """Plan only."""
    report_path: Path | None = None
    """Where the machine report will be written (checked before anything is signed)."""
    audit_path: Path | None = None
    """Audit log (None = no audit)."""
    audit: AuditSpec | None = None
    """Seal, time-stamp, anchor, syslog and rotation of the audit log (None = defaults)."""
    command_line: tuple[str, ...] = ()
    """Non-secret options, for the audit run record."""
    sign_hook: Callable[[SignFn], SignFn] | None = None
    """Wraps the token's sign call (fault injection in tests, latency in benchmarks)."""
    audit_write: Writer | None = None
    """Replaces ``os.write`` for the audit log (a full disk, in tests)."""


def plan(spec: SignJobSpec) -> list[PlannedDoc]:
    """Discover inputs, resolve each document's options once, decide outputs
    (no token needed); refuses what cannot be done before anything is touched."""
    fmt = spec.format
    out = spec.outputs
    tasks = discover(
        spec.inputs,
        recursive=spec.recursive,
        extensions=fmt.extensions,
        suffix=out.suffix if not (out.output_dir or out.in_place) else "",
        manifest=spec.manifest,
        allowed_columns=fmt.manifest_columns,
        exclude=getattr(fmt, "exclude_extensions", ()),
    )
    if not tasks:
        raise UsageError("no input documents", hint="name files, directories or --manifest")
    docs = plan_outputs(tasks, out, fmt.resolve, getattr(fmt, "output_extension", None))
    fmt.check_plan(docs)
    # The whole plan is checked first (two inputs, one output), so every part
    # refuses the same mistakes; then this part keeps its documents.
    return spec.shard.select(docs, lambda d: d.input) if spec.shard else docs


def _levels(docs: list[PlannedDoc]) -> set[str]:
    return {d.options.level for d in docs}


def _not_attempted(report: BatchReport, docs: list[PlannedDoc], reason: str) -> None:
    """Every planned document the run never reached, named in the report."""
    listed = {r.input for r in report.documents}
    for d in docs:
        if str(d.input) not in listed:
            report.documents.append(
                DocumentResult(
                    input=str(d.input),
                    output=str(d.output),
                    status=Status.NOT_ATTEMPTED,
                    level=d.options.level,
                    reason=reason,
                    options=dict(d.task.options),
                )
            )


def _signer_identity(cert_der: bytes) -> tuple[str, str, str]:
    """(common name, organisation, serial in hex) of a certificate."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(cert_der)

    def first(oid: x509.ObjectIdentifier) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return (
        first(NameOID.COMMON_NAME),
        first(NameOID.ORGANIZATION_NAME),
        format(cert.serial_number, "X"),
    )


def sign_documents(
    spec: SignJobSpec,
    *,
    io: PinIO,
    guard: PinGuard,
    warn: Callable[[str], None],
    events: Events,
    report: BatchReport,
    docs: list[PlannedDoc] | None = None,
) -> BatchReport:
    """Run the whole job (on ``docs`` if already planned).

    A run-level error is recorded in ``report.run_error`` (every document the
    run did not reach is listed as not attempted) and raised.
    """
    fmt = spec.format
    report.level = fmt.resolve({}).level
    if docs is None:
        docs = plan(spec)
    if spec.dry_run:
        report.dry_run = True
        for d in docs:
            result = DocumentResult(
                input=str(d.input),
                output=str(d.output),
                status=Status.PLANNED,
                level=d.options.level,
                reason="output exists" if d.output.exists() else None,
                options=dict(d.task.options),
            )
            try:
                # what can be told without the token: the anchor text is on
                # the page, the preset's blanks and earlier signature are there
                fmt.check_document(d)
            except SignkitError as exc:
                result.fail(exc)
            report.documents.append(result)
        return report
    run_audit: RunAudit | None = None
    try:
        levels = _levels(docs)
        needs_tsa = bool(levels & fmt.timestamped_levels)
        long_term = bool(levels & fmt.long_term_levels)
        if needs_tsa and spec.tsa is None:
            raise UsageError("B-T and higher levels need --tsa URL")
        if long_term and spec.trust.revocation == "off":
            warn("B-LT with --revocation off: the signature carries certificates but no OCSP/CRL")
        require_anchors(spec.trust)
        if spec.report_path is not None:
            check_report_path(spec.report_path)
        directories = {d.output.parent for d in docs}
        for directory in directories:
            check_writable(directory)
        for stale in remove_stale_temp_files(directories):
            warn(f"removed a temp file left by an interrupted run: {stale}")
        fmt.preflight(docs, warn)

        run_audit = RunAudit(
            spec.audit_path,
            spec.audit,
            command=f"sign {fmt.name}",
            options=spec.command_line,
            warn=warn,
            write=spec.audit_write,
        )
        _sign(spec, docs, run_audit, io=io, guard=guard, warn=warn, events=events, report=report)
    except SignkitError as exc:
        report.run_error = exc
        _not_attempted(report, docs, f"run stopped: {exc.message}")
        raise
    except KeyboardInterrupt as exc:
        report.interrupted = int(getattr(exc, "signum", 2))
        _not_attempted(report, docs, "interrupted")
        raise
    except Exception as exc:  # a bug in signkit: the records say so (exit 70)
        report.internal_error = type(exc).__name__
        _not_attempted(report, docs, f"internal error ({type(exc).__name__})")
        raise
    finally:
        if run_audit is not None:
            run_audit.run_end(report)
    return report


def _sign(
    spec: SignJobSpec,
    docs: list[PlannedDoc],
    run_audit: RunAudit,
    *,
    io: PinIO,
    guard: PinGuard,
    warn: Callable[[str], None],
    events: Events,
    report: BatchReport,
) -> None:
    fmt = spec.format
    levels = _levels(docs)
    needs_tsa = bool(levels & fmt.timestamped_levels)
    long_term = bool(levels & fmt.long_term_levels)
    workers = spec.jobs or default_workers(fmt.light_stages)
    # The workers the entry point pre-started, or forked now: before the token
    # opens (nothing PKCS#11 is loaded yet, so no token state is duplicated).
    # The signer check (path validation, OCSP/CRL) runs in a worker: its
    # validation stack loads there while this process opens the token.
    executor = start_pool(
        spec.jobs, documents=len(docs), warm_first=fmt.warmup, light=fmt.light_stages
    )
    executor.submit(trust_preload, spec.trust)

    def run_check(*args: object, **kwargs: object) -> object:
        return executor.submit(check_signer, *args, **kwargs).result()

    with (
        executor,
        open_signing_key(
            spec.token, io=io, guard=guard, warn=warn, on_login_failure=run_audit.login_failed
        ) as key,
    ):
        signer = key.signer
        if signer.pinpad_per_signature:
            warn(
                f"{key.token_name}: this key asks for the PIN before every signature; "
                f"expect {len(docs)} PIN-pad entries for this batch"
            )
        cert_der = signer.certificate_der
        check = executor.submit(check_signer, cert_der, signer.chain_der, spec.trust).result()
        for w in check.warnings:
            warn(w)
        scheme: SignatureScheme = (
            "ecdsa" if signer.key_type == "EC" else ("pss" if spec.pss else "pkcs1v15")
        )
        signer.plan(spec.digest_algorithm, scheme)  # fail before any file is touched
        preflight_token = None
        if needs_tsa and spec.tsa is not None:
            preflight_token = request_timestamp(spec.tsa, b"signkit preflight")
        ltv_certs, ocsps, crls = ltv_material(
            check,
            preflight_token if long_term else None,
            spec.trust,
            run_check=run_check,  # type: ignore[arg-type]
        )
        name, org, serial = _signer_identity(cert_der)
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
        run_audit.run_start(report, key, check, level=report.level, digest=spec.digest_algorithm)
        context = SignerContext(
            certificate_der=cert_der,
            chain_der=check.chain,
            key_type=signer.key_type,
            key_size=int(signer.key_size or 0),
            digest_algorithm=spec.digest_algorithm,
            scheme=scheme,
            tsa=spec.tsa,
            needs_tsa=needs_tsa,
            ltv_certs=ltv_certs if long_term else (),
            ltv_ocsps=ocsps if long_term else (),
            ltv_crls=crls if long_term else (),
            timezone=spec.timezone,
            signer_name=name,
            signer_org=org,
            signer_serial=serial,
        )
        stages = fmt.stages(context)

        def sign(data: bytes) -> bytes:
            return bytes(signer.sign(data, digest_algorithm=spec.digest_algorithm, scheme=scheme))

        if spec.sign_hook is not None:
            sign = spec.sign_hook(sign)
        for number, pass_docs in enumerate(fmt.passes(docs)):
            if number > 0:
                # A later signature goes only on documents whose earlier one is there.
                ready = {
                    d.output
                    for d in report.documents
                    if d.status in (Status.SIGNED, Status.SKIPPED) and d.output
                }
                pass_docs = [d for d in pass_docs if str(d.output) in ready]
                if not pass_docs:
                    break
            run_batch(
                docs=pass_docs,  # type: ignore[arg-type]
                plugin=fmt,
                stages=stages,
                sign=sign,
                executor=executor,
                report=report,
                audit=run_audit.log,
                events=events,
                spec=spec.engine,
                signer_sha256=check.sha256,
                workers=workers,
            )
