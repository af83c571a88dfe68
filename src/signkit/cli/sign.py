"""`signkit sign pdf|xml`: many documents, one token session, one PIN entry."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .complete import pdf_presets, xml_presets
from .context import Output, TerminalPinIO, get_state, run_command
from .framework import command, grouped, new_app
from .options import (
    AuditOptions,
    AuditSealOptions,
    BatchOptions,
    ConfigOptions,
    Digest,
    InputOptions,
    KeyOptions,
    LimitsOptions,
    OutputOptions,
    PinOptions,
    ProgressOptions,
    ReportOptions,
    TokenOptions,
    TrustOptions,
    TsaOptions,
)

app = new_app("sign", "Sign documents in bulk with a token key.", no_args_is_help=True)


@app.callback()
def group() -> None:
    """Sign documents in bulk with a token key."""


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class SigningOptions:
    """How every format signs: digest, padding, the zone of the signing time."""

    digest: Annotated[
        Digest, typer.Option("--digest", help="Message digest (of the references, for XML).")
    ] = "sha256"
    pss: Annotated[
        bool, typer.Option("--pss", help="RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys).")
    ] = False
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            metavar="ZONE",
            help="Zone of the signing time shown to people (PDF appearances, XML).",
        ),
    ] = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class SignRun:
    """The groups every `signkit sign FORMAT` takes, handed to the shared body."""

    inputs: InputOptions
    batch: BatchOptions
    tsa: TsaOptions
    trust: TrustOptions
    signing: SigningOptions
    report: ReportOptions
    audit: AuditOptions
    seal: AuditSealOptions
    limits: LimitsOptions
    progress: ProgressOptions
    token: TokenOptions
    key: KeyOptions
    pin: PinOptions
    output: OutputOptions


def secret_env(name: str) -> str | None:
    """A secret the entry point took out of the environment at start-up."""
    from signkit.envsecrets import take

    return take(name)


def _read_secret_file(path: Path | None, what: str) -> str | None:
    from signkit.errors import InputError

    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(
            f"cannot read the {what} file ({exc.strerror})", subject=str(path)
        ) from None
    return lines[0] if lines else ""


def _summary(out: Output, report: Any) -> None:
    """What the run did: the documents that failed on stderr (with -v or
    --dry-run, every document, on stdout, unless --json stands in for them),
    then the counts on stderr (kept with -q)."""
    from rich.table import Table

    from signkit.i18n import t

    totals = report.totals()
    failed = [d for d in report.documents if d.status.value == "failed"]
    listed = out.verbose or report.dry_run
    if len(report.documents) == 1 and failed and not listed:
        # One document: its error on one line, as for any other bad input.
        doc = failed[0]
        out.error(doc.error_message or "", doc.error_hint)
        return
    if (listed and not out.json) or failed:
        table = Table(box=None, pad_edge=False, show_header=True)
        for col in ("status", "input", "output / reason"):
            table.add_column(t(col))
        for d in report.documents:
            if not (listed and not out.json) and d.status.value != "failed":
                continue
            detail = t(d.error_message or d.reason or "") or d.output or ""
            table.add_row(t(d.status.value), d.input, detail)
        if listed and not out.json:
            out.table(table)
        else:
            out.failures(table)
    if report.dry_run:
        line = t("dry run: {planned} planned, {skipped} skipped (of {total})")
    else:
        line = t(
            "{signed} signed, {skipped} skipped, {failed} failed, "
            "{not_attempted} not attempted (of {total})"
        )
    out.summary(line.format(**{k.replace("-", "_"): v for k, v in totals.items()}))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class PdfOptions:
    """The signature of `sign pdf`: its dictionary, its place and its look
    (the fields of formats.pdf.PdfDocOptions, by the same names)."""

    level: Annotated[
        Literal["B-B", "B-T", "B-LT", "B-LTA"],
        typer.Option("--level", help="PAdES baseline level."),
    ] = "B-B"
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Reason for signing.")
    ] = None
    location: Annotated[
        str | None,
        typer.Option("--location", metavar="TEXT", help="Where the document was signed."),
    ] = None
    contact: Annotated[
        str | None,
        typer.Option("--contact", metavar="TEXT", help="Signer contact information."),
    ] = None
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="TEXT", help="Signer name shown by readers (default: certificate CN)."
        ),
    ] = None
    field: Annotated[
        str | None,
        typer.Option("--field", metavar="NAME", help="Signature field to fill, or to create."),
    ] = None
    page: Annotated[
        str | None,
        typer.Option(
            "--page",
            metavar="N|last",
            help="Page of a visible signature: N or 'last' (default 1; --anchor-text searches "
            "from the last page back unless given).",
        ),
    ] = None
    rect: Annotated[
        str | None,
        typer.Option(
            "--rect", metavar="X,Y,W,H", help="Visible signature box in mm from --corner."
        ),
    ] = None
    corner: Annotated[
        Literal["bottom-left", "top-left", "top-right", "bottom-right"],
        typer.Option("--corner", help="Corner --rect is measured from."),
    ] = "bottom-left"
    text: Annotated[
        str | None,
        typer.Option(
            "--text",
            metavar="TEXT",
            help="Appearance text; placeholders {signer} {org} {serial} {time} "
            "{reason} {location}; '' for image only.",
        ),
    ] = None
    image: Annotated[
        Path | None,
        typer.Option(
            "--image",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="PNG (with alpha) shown in the appearance.",
        ),
    ] = None
    layout: Annotated[
        Literal["side", "stacked"],
        typer.Option("--layout", help="Image and text side by side, or stacked."),
    ] = "side"
    font_size: Annotated[
        float, typer.Option("--font-size", metavar="PT", help="Appearance text size.")
    ] = 9.0
    anchor_text: Annotated[
        str | None,
        typer.Option(
            "--anchor-text",
            metavar="TEXT",
            help="Place the signature by this text on the page (e.g. the signer's printed name).",
        ),
    ] = None
    anchor_occurrence: Annotated[
        int | None,
        typer.Option(
            "--anchor-occurrence",
            min=1,
            metavar="N",
            help="Which occurrence of the anchor text on its page (default: the last).",
        ),
    ] = None
    anchor_ignore_case: Annotated[
        bool,
        typer.Option(
            "--anchor-ignore-case",
            help="Match the anchor text whatever its case ('TRẦN THỊ BÌNH' finds 'Trần Thị Bình').",
        ),
    ] = False
    anchor_position: Annotated[
        Literal["above", "below", "left", "right", "over"],
        typer.Option("--anchor-position", help="Where the box goes relative to the text."),
    ] = "above"
    anchor_offset: Annotated[
        str,
        typer.Option(
            "--anchor-offset", metavar="DX,DY", help="Shift of the anchored box in mm (right, up)."
        ),
    ] = "0,0"
    box_size: Annotated[
        str, typer.Option("--box-size", metavar="W,H", help="Size in mm of an anchored box.")
    ] = "60,20"
    certify: Annotated[
        bool, typer.Option("--certify", help="Certification signature (DocMDP).")
    ] = False
    docmdp: Annotated[
        int,
        typer.Option(
            "--docmdp",
            min=1,
            max=3,
            metavar="1-3",
            help="With --certify: 1 no changes, 2 form filling, 3 + annotations.",
        ),
    ] = 2
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="Document layout filling the options left at their defaults: nd30-person, "
            "nd30-org, nd30-number-date, nd30-number, nd30-date, nd30-attachment, nd30-copy "
            "(Decree 30/2020), or a [pdf-presets.NAME] table of the configuration.",
            autocompletion=pdf_presets,
        ),
    ] = None
    seal_mm: Annotated[
        float | None,
        typer.Option("--seal-mm", metavar="MM", help="nd30-org: the seal's real diameter."),
    ] = None
    over_field: Annotated[
        str | None,
        typer.Option(
            "--over-field",
            metavar="NAME",
            help="nd30-org: the signature the seal overlaps (default: the last one with an image).",
        ),
    ] = None
    doc_number: Annotated[
        str | None,
        typer.Option(
            "--doc-number",
            metavar="TEXT",
            help="Number and symbol, e.g. 12/QĐ-UBND ({doc_number}).",
        ),
    ] = None
    copy_form: Annotated[
        str | None,
        typer.Option(
            "--copy-form",
            metavar="FORM",
            help="nd30-copy: SAO Y, SAO LỤC or TRÍCH SAO ({copy_form}).",
        ),
    ] = None
    copy_org: Annotated[
        str | None,
        typer.Option(
            "--copy-org", metavar="TEXT", help="nd30-copy: the copying organisation ({copy_org})."
        ),
    ] = None


@command(app, "pdf")
@grouped
def sign_pdf(
    ctx: typer.Context,
    *,
    inputs: InputOptions,
    batch: BatchOptions,
    pdf: PdfOptions,
    tsa: TsaOptions,
    trust: TrustOptions,
    signing: SigningOptions,
    password_file: Annotated[
        Path | None,
        typer.Option(
            "--password-file",
            metavar="FILE",
            dir_okay=False,
            help="Password of encrypted PDFs [or env SIGNKIT_PDF_PASSWORD].",
        ),
    ] = None,
    report: ReportOptions,
    audit: AuditOptions,
    seal: AuditSealOptions,
    limits: LimitsOptions,
    progress: ProgressOptions,
    token: TokenOptions,
    key: KeyOptions,
    pin: PinOptions,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Sign PDFs (PAdES B-B, B-T, B-LT, B-LTA), one token session for the whole batch.

    \b
    Examples:
      signkit sign pdf inbox/*.pdf
      signkit sign pdf -r inbox --output-dir signed --level B-LT --tsa http://tsa.example
      signkit sign pdf --manifest batch.csv --report report.json
    """
    run = SignRun(
        inputs=inputs,
        batch=batch,
        tsa=tsa,
        trust=trust,
        signing=signing,
        report=report,
        audit=audit,
        seal=seal,
        limits=limits,
        progress=progress,
        token=token,
        key=key,
        pin=pin,
        output=output,
    )

    def make_format() -> Any:
        from signkit.formats.pdf import PdfDocOptions, PdfFormat

        values = {f.name: getattr(pdf, f.name) for f in dataclasses.fields(pdf)}
        values["image"] = str(pdf.image) if pdf.image else None
        password = _read_secret_file(password_file, "password")
        return PdfFormat(
            defaults=PdfDocOptions(**values),
            password=password or secret_env("SIGNKIT_PDF_PASSWORD"),
        )

    _sign_command(ctx, run, "sign pdf", make_format)


def _sign_command(
    ctx: typer.Context, run: SignRun, command: str, make_format: Callable[[], Any]
) -> None:
    """The body every `signkit sign FORMAT` shares: build the job, plan, sign
    with a progress bar, then report (summary, --json, --report) whatever
    happened, and exit with the one exit-code rule of every format."""
    out = Output.of(run.output)
    state = get_state(ctx)
    argv = tuple(sys.argv[1:])
    env_tsa_password = secret_env("SIGNKIT_TSA_PASSWORD")

    def body() -> int:
        from signkit.startup import imports_without_gc

        with imports_without_gc():
            import signkit.jobs.signing  # noqa: F401  (the heavy part, imported first)
        from signkit.errors import UsageError
        from signkit.jobs.report import BatchReport
        from signkit.jobs.signing import SignJobSpec, plan, sign_documents

        if not run.inputs.given():
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE",
                hint=f"signkit {command} --help",
            )
        report = BatchReport(command=command, shard=run.inputs.shard)
        report_path = run.report.report_path
        try:
            spec = SignJobSpec(
                format=make_format(),
                **_batch_fields(run, out, state.env_pin, env_tsa_password, argv),
            )
        except BaseException as exc:
            _finish_failed(out, report, report_path, exc)
            raise
        _run_batch(
            out,
            report,
            report_path,
            lambda: plan(spec),
            functools.partial(sign_documents, spec),
            dry_run=spec.dry_run,
            require_input=run.inputs.require_input,
            progress_every=run.progress.progress_every,
        )
        return report.exit_code()

    run_command(out, body)


def _batch_fields(
    run: SignRun,
    out: Output,
    env_pin: Any,
    env_tsa_password: str | None,
    argv: tuple[str, ...],
) -> dict[str, Any]:
    """The job-spec fields every bulk signing command shares (PDF, XML)."""
    from signkit.audit.log import default_audit_path
    from signkit.jobs.engine import EngineSpec
    from signkit.jobs.outputs import OutputSpec
    from signkit.pki.anchors import TrustSpec, resolve_anchor
    from signkit.pki.timestamps import TsaSpec

    from .tokenspec import build_token_spec

    token = build_token_spec(token=run.token, key=run.key, pin=run.pin, env_pin=env_pin)
    tsa = None
    if run.tsa.tsa_url:
        password = _read_secret_file(run.tsa.tsa_password_file, "TSA password")
        tsa = TsaSpec(
            url=run.tsa.tsa_url,
            policy=run.tsa.tsa_policy,
            nonce=not run.tsa.tsa_no_nonce,
            username=run.tsa.tsa_user,
            password=password or env_tsa_password,
        )
    if run.audit.no_audit:
        out.warn("audit log disabled (--no-audit): this run leaves no audit record")
        audit_path = None
    else:
        audit_path = run.audit.audit_log or default_audit_path()
    batch = run.batch
    return {
        "inputs": tuple(run.inputs.inputs or ()),
        "recursive": run.inputs.recursive,
        "manifest": run.inputs.manifest,
        "shard": run.inputs.part(),
        "outputs": OutputSpec(
            output=batch.output,
            output_dir=batch.output_dir,
            suffix=batch.suffix,
            in_place=batch.in_place,
            allow_absolute_outputs=batch.allow_absolute_outputs,
        ),
        "engine": EngineSpec(
            fail_fast=batch.fail_fast,
            force=batch.force,
            resign=batch.resign,
            limits=run.limits.limits(),
        ),
        "token": token,
        "trust": TrustSpec(
            anchors=tuple(resolve_anchor(str(v)) for v in run.trust.trust or ()),
            revocation=run.trust.revocation,
        ),
        "tsa": tsa,
        "digest_algorithm": run.signing.digest,
        "pss": run.signing.pss,
        "timezone": run.signing.timezone,
        "jobs": batch.jobs or 0,
        "dry_run": batch.dry_run,
        "report_path": run.report.report_path,
        "audit_path": audit_path,
        "audit": run.seal.spec(),
        "command_line": argv,
    }


def _run_batch(
    out: Output,
    report: Any,
    report_path: Path | None,
    plan: Callable[[], list[Any]],
    sign: Callable[..., Any],
    *,
    dry_run: bool,
    require_input: bool,
    progress_every: int,
) -> None:
    """Plan, then sign with a progress bar, then report what happened (summary,
    --json, --report). A run-level error or a stop signal is re-raised once
    the report is out, for the exit code. Nothing to sign (an empty inbox) is
    success, said in one line, unless --require-input."""
    from signkit.errors import EmptyShardError, NothingToDoError
    from signkit.tokens.guard import PinGuard, default_state_dir

    from .progress import progress_for

    progress: Any = None
    try:
        docs = plan()
    except NothingToDoError as exc:
        if not require_input or isinstance(exc, EmptyShardError):
            report.nothing_to_do = str(exc)
            _finish(out, report, report_path)
            out.summary(f"nothing to do: {exc}")
            return
        _finish_failed(out, report, report_path, exc)
        raise
    except BaseException as exc:
        _finish_failed(out, report, report_path, exc)
        raise

    class Events:
        def document_done(self, result: Any) -> None:
            if progress is not None:
                progress.document_done(result)

    try:
        progress = progress_for(
            out, 0 if dry_run else len(docs), every=progress_every, what="signing"
        )
        sign(
            io=TerminalPinIO(),
            guard=PinGuard(default_state_dir()),
            warn=out.warn,
            events=Events(),
            report=report,
            docs=docs,
        )
    except BaseException as exc:
        if progress is not None:
            progress.close()
            progress = None
        _finish_failed(out, report, report_path, exc)
        raise
    finally:
        if progress is not None:
            progress.close()
    _finish(out, report, report_path)


def _finish_failed(out: Output, report: Any, report_path: Path | None, exc: BaseException) -> None:
    """A run that ended early still reports: its error (class, message, hint,
    exit code) or the signal that stopped it, and every document's status."""
    from signkit.errors import SignkitError

    if isinstance(exc, SignkitError):
        report.run_error = report.run_error or exc
    elif isinstance(exc, KeyboardInterrupt):
        report.interrupted = int(getattr(exc, "signum", 2))
    else:
        return  # a bug: its own message says so, a report would only mislead
    try:
        _finish(out, report, report_path)
    except SignkitError as write_error:
        out.warn(str(write_error))


def _finish(out: Output, report: Any, report_path: Path | None) -> None:
    for warning in report.warnings:
        out.warn(warning)
    if report_path is not None:
        report.write(report_path)
    if out.json:
        out.emit_json(report.to_json())
    reached = any(d.status.value != "not-attempted" for d in report.documents)
    if reached or (report.documents and report.run_error is None):
        # A run that failed before its first document says so in one line.
        _summary(out, report)


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class XmlOptions:
    """The signature of `sign xml` (None: the preset's, else the default)."""

    level: Annotated[
        Literal["plain", "B-B", "B-T", "B-LT"] | None,
        typer.Option(
            "--level",
            help="plain XMLDSig, or XAdES B-B / B-T / B-LT [default: the preset's, else plain].",
        ),
    ] = None
    form: Annotated[
        Literal["enveloped", "enveloping", "detached"] | None,
        typer.Option(
            "--form",
            help="Signature inside the document (default), the document inside the signature, "
            "or the signature in a file of its own (over the whole data file, or with "
            "--reference over one element of it).",
        ),
    ] = None
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            metavar="ID",
            help="Sign the element with this Id (default: the whole document).",
        ),
    ] = None
    id_attributes: Annotated[
        list[str] | None,
        typer.Option(
            "--id-attribute",
            metavar="NAME",
            help="Another attribute that carries Ids (e.g. lower-case 'id'); repeatable.",
        ),
    ] = None
    signature_parent: Annotated[
        str | None,
        typer.Option(
            "--signature-parent",
            metavar="XPATH",
            help="Element the Signature is appended to (default: the root element).",
        ),
    ] = None
    signature_id: Annotated[
        str | None,
        typer.Option("--signature-id", metavar="ID", help="Id of the Signature element."),
    ] = None
    c14n: Annotated[
        Literal["inclusive", "exclusive"] | None,
        typer.Option("--c14n", help="Canonicalisation (default: inclusive C14N 1.0)."),
    ] = None
    signer_role: Annotated[
        str | None,
        typer.Option("--signer-role", metavar="TEXT", help="XAdES claimed signer role."),
    ] = None
    data_object_format: Annotated[
        str | None,
        typer.Option(
            "--data-object-format",
            metavar="MIME",
            help="XAdES DataObjectFormat of the signed data.",
        ),
    ] = None


@command(app, "xml")
@grouped
def sign_xml(
    ctx: typer.Context,
    *,
    inputs: InputOptions,
    batch: BatchOptions,
    xml: XmlOptions,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="Document layout: vn-einvoice, vn-tax-declaration, "
            "or a [xml-presets.NAME] table of the configuration.",
            autocompletion=xml_presets,
        ),
    ] = None,
    tsa: TsaOptions,
    trust: TrustOptions,
    signing: SigningOptions,
    report: ReportOptions,
    audit: AuditOptions,
    seal: AuditSealOptions,
    limits: LimitsOptions,
    progress: ProgressOptions,
    token: TokenOptions,
    key: KeyOptions,
    pin: PinOptions,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Sign XML documents (XMLDSig, XAdES B-B/B-T/B-LT), one token session for the whole batch.

    The document's bytes are kept as they are: the Signature is inserted,
    nothing is reformatted. A DTD may only declare ID attributes; entities
    are never expanded, nothing is fetched.

    \b
    Examples:
      signkit sign xml inbox/*.xml --output-dir signed
      signkit sign xml -r invoices --preset vn-einvoice --output-dir signed
      signkit sign xml data.xml --level B-T --tsa http://tsa.example --signer-role "Kế toán"
    """
    run = SignRun(
        inputs=inputs,
        batch=batch,
        tsa=tsa,
        trust=trust,
        signing=signing,
        report=report,
        audit=audit,
        seal=seal,
        limits=limits,
        progress=progress,
        token=token,
        key=key,
        pin=pin,
        output=output,
    )

    def make_format() -> Any:
        from signkit.config import load_config
        from signkit.formats.xml_format import XmlFormat, build_options

        given = {f.name: getattr(xml, f.name) for f in dataclasses.fields(xml)}
        given["id_attributes"] = ("Id", *xml.id_attributes) if xml.id_attributes else None
        return XmlFormat(
            defaults=build_options(
                preset=preset, config=load_config(config.config_path), given=given
            )
        )

    _sign_command(ctx, run, "sign xml", make_format)
