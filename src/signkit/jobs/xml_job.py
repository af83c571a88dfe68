"""`sign xml` as a job: discover, plan, check the signer, then run the engine."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signkit.audit.log import AuditSpec
from signkit.config import Config
from signkit.errors import ConfigError, SignkitError, UsageError
from signkit.formats import xml
from signkit.formats.xml_presets import BUILTIN, PRESET_KEYS
from signkit.jobs.engine import EngineSpec, Events, SignFn, Stages, run_batch
from signkit.jobs.inputs import discover
from signkit.jobs.outputs import (
    OutputSpec,
    PlannedDoc,
    check_writable,
    plan_outputs,
    remove_stale_temp_files,
)
from signkit.jobs.report import BatchReport, DocumentResult, Status
from signkit.jobs.runlog import RunAudit
from signkit.timestamps import TsaSpec, request_timestamp
from signkit.tokens.access import TokenSpec, open_signing_key
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import SignatureScheme
from signkit.tokens.pin import PinIO
from signkit.trust import TrustSpec, check_signer, ltv_material, require_anchors
from signkit.trust import preload as trust_preload
from signkit.workers import start_pool


@dataclass(frozen=True, kw_only=True)
class XmlJobSpec:
    """Everything `signkit sign xml` was asked to do."""

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
    options: xml.XmlDocOptions = field(default_factory=xml.XmlDocOptions)
    """Default signature settings (manifest rows override)."""
    tsa: TsaSpec | None = None
    """Time-stamping authority for B-T."""
    digest_algorithm: str = "sha256"
    """Digest of references and of the signature."""
    pss: bool = False
    """RSASSA-PSS instead of PKCS#1 v1.5 for RSA keys."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """Zone of the signing time."""
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


def preset_settings(name: str, config: Config) -> Mapping[str, Any]:
    """The settings of a built-in preset or of a ``[xml-presets.NAME]`` config table."""
    user = config.section("xml-presets")
    if name in user:
        if name in BUILTIN:
            raise ConfigError(
                f"[xml-presets.{name}] would redefine a built-in preset; choose another name",
                subject=str(config.path),
            )
        table = user[name]
        unknown = sorted(set(k.replace("-", "_") for k in table) - set(PRESET_KEYS))
        if unknown:
            raise ConfigError(
                f"[xml-presets.{name}]: unknown key(s) {', '.join(unknown)}",
                subject=str(config.path),
                hint="keys: " + ", ".join(sorted(PRESET_KEYS)),
            )
        return table
    if name in BUILTIN:
        return BUILTIN[name]
    known = sorted(set(BUILTIN) | set(user))
    raise UsageError(f"unknown preset '{name}'", hint="presets: " + ", ".join(known))


def build_options(
    *, preset: str | None, config: Config, given: Mapping[str, Any]
) -> xml.XmlDocOptions:
    """Preset first, then the options given on the command line (None = not given)."""
    opts = xml.XmlDocOptions()
    if preset is not None:
        settings = preset_settings(preset, config)
        try:
            opts = xml.apply_settings(opts, settings, f"preset {preset}")
        except UsageError as exc:
            raise ConfigError(exc.message, subject=exc.subject, hint=exc.hint) from None
    chosen = {k: v for k, v in given.items() if v is not None and v != ()}
    if "signature_parent" in chosen:
        # An explicit XPath replaces the preset's path (and is never created).
        chosen["parent_path"] = ()
        chosen["create_parent"] = False
    if "reference" in chosen:
        chosen["reference_path"] = ()
    if "id_attributes" in chosen:
        # Registered on top of the preset's (a preset's lower-case 'id' stays).
        chosen["id_attributes"] = tuple(
            dict.fromkeys((*opts.id_attributes, *chosen["id_attributes"]))
        )
    return xml.apply_settings(opts, chosen, "options")


def plan(spec: XmlJobSpec) -> list[PlannedDoc]:
    """Discover inputs and decide outputs (no token needed)."""
    tasks = discover(
        spec.inputs,
        recursive=spec.recursive,
        extensions=xml.EXTENSIONS,
        suffix=spec.outputs.suffix
        if not (spec.outputs.output_dir or spec.outputs.in_place)
        else "",
        manifest=spec.manifest,
        allowed_columns=xml.OVERRIDABLE,
    )
    if not tasks:
        raise UsageError("no input documents", hint="name files, directories or --manifest")
    xml.validate(spec.options)
    for task in tasks:
        xml.resolve_options(spec.options, task.options)  # validate every row up front
    if spec.options.form == "detached" and spec.outputs.in_place:
        raise UsageError("--in-place cannot hold a detached signature (it is a file of its own)")
    return plan_outputs(tasks, spec.outputs)


def _intermediates(chain: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The chain without the leaf and without self-signed roots (KeyInfo carries these)."""
    from cryptography import x509

    out = []
    for der in chain[1:]:
        cert = x509.load_der_x509_certificate(der)
        if cert.subject != cert.issuer:
            out.append(der)
    return tuple(out)


def _levels(spec: XmlJobSpec, docs: list[PlannedDoc]) -> set[str]:
    return {xml.resolve_options(spec.options, d.task.options).level for d in docs}


def sign_xmls(
    spec: XmlJobSpec,
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
            report.documents.append(
                DocumentResult(
                    input=str(d.task.input),
                    output=str(d.output),
                    status=Status.PLANNED,
                    level=xml.resolve_options(spec.options, d.task.options).level,
                    reason="output exists" if d.output.exists() else None,
                    options=dict(d.task.options),
                )
            )
        return report
    levels = _levels(spec, docs)
    needs_tsa = bool(levels & set(xml.TIMESTAMPED))
    if needs_tsa and spec.tsa is None:
        raise UsageError("--level B-T/B-LT needs --tsa URL")
    if "B-LT" in levels and spec.trust.revocation == "off":
        warn("B-LT with --revocation off: the signature carries certificates but no OCSP/CRL")
    require_anchors(spec.trust)
    directories = {d.output.parent for d in docs}
    for directory in directories:
        check_writable(directory)
    for stale in remove_stale_temp_files(directories):
        warn(f"removed a temp file left by an interrupted run: {stale}")

    run_audit = RunAudit(
        spec.audit_path, spec.audit, command="sign xml", options=spec.command_line, warn=warn
    )
    audit = run_audit.log
    workers = spec.jobs or os.cpu_count() or 2
    import lxml.etree  # noqa: F401 - imported once here, inherited by the workers

    # The workers the entry point pre-started, or forked now: before the token
    # opens (nothing PKCS#11 is loaded yet, so no token state is duplicated)
    # and before any thread starts.
    executor = start_pool(spec.jobs, warm_first=("signkit.formats.xml", "worker_warmup"))
    # The signer check (path validation, OCSP/CRL) runs in a worker: its
    # validation stack (~0.3 s of imports) loads there while this process
    # opens the token, not on this process's way to the first signature.
    executor.submit(trust_preload, spec.trust)
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
            check = executor.submit(check_signer, cert_der, signer.chain_der, spec.trust).result()
            for w in check.warnings:
                warn(w)
            scheme: SignatureScheme = (
                "ecdsa" if signer.key_type == "EC" else ("pss" if spec.pss else "pkcs1v15")
            )
            signer.plan(spec.digest_algorithm, scheme)  # fail before any file is touched
            token = None
            if needs_tsa and spec.tsa is not None:
                token = request_timestamp(spec.tsa, b"signkit preflight")
            # B-LT: the validation data of the signer's chain and of the TSA's,
            # gathered once for the batch (as a PDF's DSS is).
            long_term = "B-LT" in levels
            ltv_certs, ocsps, crls = ltv_material(
                check,
                token if long_term else None,
                spec.trust,
                run_check=lambda *a, **k: executor.submit(check_signer, *a, **k).result(),
            )
            report.signer = {
                "subject": check.subject,
                "sha256": check.sha256,
                "token": key.token_name,
                "not_after": check.not_after.isoformat(),
                "chain_anchor": check.anchored,
                "revocation": check.revocation,
                "revocation_evidence": check.evidence(),
            }
            run_audit.run_start(
                report,
                key,
                check,
                level=spec.options.level,
                digest=spec.digest_algorithm,
            )
            config = xml.XmlBatchConfig(
                signer_der=cert_der,
                chain_der=_intermediates(check.chain),
                key_type=signer.key_type,
                key_size=int(signer.key_size or 0),
                digest_algorithm=spec.digest_algorithm,
                scheme=scheme,
                tsa=spec.tsa,
                timezone=spec.timezone,
                tax_code=xml.tax_code_of(cert_der),
                ltv_certs=ltv_certs if long_term else (),
                ltv_ocsps=ocsps if long_term else (),
                ltv_crls=crls if long_term else (),
            )

            def make_item(index: int, planned: PlannedDoc, temp: Path) -> xml.PrepareItem:
                return xml.PrepareItem(
                    index=index,
                    input=str(planned.task.input),
                    output=str(planned.output),
                    temp=str(temp),
                    options=xml.resolve_options(spec.options, planned.task.options),
                    config=config,
                )

            stages = Stages(
                name="xml",
                prepare=xml.worker_prepare,
                finish=xml.worker_finish,
                make_item=make_item,
                already_done=functools.partial(
                    xml.signed_by, id_attributes=spec.options.id_attributes
                ),
            )

            def sign(data: bytes) -> bytes:
                return bytes(
                    signer.sign(data, digest_algorithm=spec.digest_algorithm, scheme=scheme)
                )

            if spec.sign_hook is not None:
                sign = spec.sign_hook(sign)
            run_batch(
                docs=docs,
                stages=stages,
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
