"""`signkit sign pdf`: many documents, one token session, one PIN entry."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .audit import audit_options, audit_spec
from .context import Output, TerminalPinIO, get_state, run_command
from .options import (
    batch_options,
    key_options,
    limits_from,
    limits_options,
    output_options,
    pin_options,
    report_options,
    token_options,
    trust_options,
    tsa_options,
)

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


@click.group("sign", no_args_is_help=True)
def group() -> None:
    """Sign documents in bulk with a token key."""


class _Progress:
    """A rich progress bar on stderr (only on a terminal, and not with --quiet)."""

    def __init__(self, out: Output, total: int) -> None:
        self.bar: Any = None
        self.task: Any = None
        if total and sys.stderr.isatty() and not out.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=out.console(),
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task("signing", total=total)

    def document_done(self, result: Any) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


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
    from rich.table import Table

    from signkit.i18n import t

    totals = report.totals()
    console = out.console()
    failed = [d for d in report.documents if d.status.value == "failed"]
    if len(report.documents) == 1 and failed and not out.verbose:
        # One document: its error on one line, as for any other bad input.
        doc = failed[0]
        console.print(f"{t('error')}: {t(doc.error_message or '')}", style="bold red", markup=False)
        if doc.error_hint:
            console.print(f"{t('hint')}: {t(doc.error_hint)}", markup=False)
        return
    if out.verbose or failed:
        table = Table(box=None, pad_edge=False, show_header=True)
        for col in ("status", "input", "output / reason"):
            table.add_column(t(col))
        for d in report.documents:
            if not out.verbose and d.status.value != "failed":
                continue
            detail = t(d.error_message or d.reason or "") or d.output or ""
            table.add_row(t(d.status.value), d.input, detail)
        console.print(table)
    if report.dry_run:
        line = t("dry run: {planned} planned, {skipped} skipped (of {total})")
    else:
        line = t(
            "{signed} signed, {skipped} skipped, {failed} failed, "
            "{not_attempted} not attempted (of {total})"
        )
    out.info(line.format(**{k.replace("-", "_"): v for k, v in totals.items()}))


@group.command("pdf")
@batch_options
@click.option(
    "--level",
    type=click.Choice(LEVELS),
    default="B-B",
    show_default=True,
    help="PAdES baseline level.",
)
@tsa_options
@trust_options
@click.option(
    "--digest",
    type=click.Choice(["sha256", "sha384", "sha512"]),
    default="sha256",
    show_default=True,
    help="Message digest.",
)
@click.option("--pss", is_flag=True, help="RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys).")
@click.option("--reason", help="Reason for signing.")
@click.option("--location", help="Where the document was signed.")
@click.option("--contact", help="Signer contact information.")
@click.option("--name", help="Signer name shown by readers (default: certificate CN).")
@click.option("--field", help="Signature field to fill, or to create.")
@click.option(
    "--page",
    help="Page of a visible signature: N or 'last' (default 1; --anchor-text searches "
    "from the last page back unless given).",
)
@click.option("--rect", metavar="X,Y,W,H", help="Visible signature box in mm from --corner.")
@click.option(
    "--corner",
    type=click.Choice(["bottom-left", "top-left", "top-right", "bottom-right"]),
    default="bottom-left",
    show_default=True,
    help="Corner --rect is measured from.",
)
@click.option(
    "--text",
    help="Appearance text; placeholders {signer} {org} {serial} {time} "
    "{reason} {location}; '' for image only.",
)
@click.option(
    "--image",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="PNG (with alpha) shown in the appearance.",
)
@click.option(
    "--layout",
    type=click.Choice(["side", "stacked"]),
    default="side",
    show_default=True,
    help="Image and text side by side, or stacked.",
)
@click.option(
    "--font-size", type=float, default=9.0, show_default=True, help="Appearance text size."
)
@click.option(
    "--anchor-text",
    metavar="TEXT",
    help="Place the signature by this text on the page (e.g. the signer's printed name).",
)
@click.option(
    "--anchor-occurrence",
    type=click.IntRange(min=1),
    help="Which occurrence of the anchor text on its page (default: the last).",
)
@click.option(
    "--anchor-position",
    type=click.Choice(["above", "below", "left", "right", "over"]),
    default="above",
    show_default=True,
    help="Where the box goes relative to the text.",
)
@click.option(
    "--anchor-offset",
    default="0,0",
    show_default=True,
    metavar="DX,DY",
    help="Shift of the anchored box in mm (right, up).",
)
@click.option(
    "--box-size",
    default="60,20",
    show_default=True,
    metavar="W,H",
    help="Size in mm of an anchored box.",
)
@click.option("--certify", is_flag=True, help="Certification signature (DocMDP).")
@click.option(
    "--docmdp",
    type=click.IntRange(1, 3),
    default=2,
    show_default=True,
    help="With --certify: 1 no changes, 2 form filling, 3 + annotations.",
)
@click.option(
    "--preset",
    metavar="NAME",
    help="Document layout filling the options left at their defaults: nd30-person, "
    "nd30-org, nd30-attachment, nd30-copy (Decree 30/2020).",
)
@click.option("--seal-mm", type=float, metavar="MM", help="nd30-org: the seal's real diameter.")
@click.option(
    "--over-field",
    metavar="NAME",
    help="nd30-org: the signature the seal overlaps (default: the last one with an image).",
)
@click.option(
    "--doc-number", metavar="TEXT", help="Number and symbol, e.g. 12/QĐ-UBND ({doc_number})."
)
@click.option(
    "--copy-form", metavar="FORM", help="nd30-copy: SAO Y, SAO LỤC or TRÍCH SAO ({copy_form})."
)
@click.option(
    "--copy-org", metavar="TEXT", help="nd30-copy: the copying organisation ({copy_org})."
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Password of encrypted PDFs [or env SIGNKIT_PDF_PASSWORD].",
)
@click.option(
    "--timezone",
    default="Asia/Ho_Chi_Minh",
    show_default=True,
    help="Zone of the signing time shown in appearances.",
)
@report_options
@audit_options
@limits_options
@token_options
@key_options
@pin_options
@output_options
def sign_pdf(**options: Any) -> None:
    """Sign PDFs (PAdES B-B, B-T, B-LT, B-LTA), one token session for the whole batch.

    \b
    Examples:
      signkit sign pdf inbox/*.pdf
      signkit sign pdf -r inbox --output-dir signed --level B-LT --tsa http://tsa.example
      signkit sign pdf --manifest batch.csv --report report.json
    """
    out = Output.from_options(options)

    def make_format(o: dict[str, Any]) -> Any:
        from signkit.formats.pdf import PdfDocOptions, PdfFormat

        defaults = PdfDocOptions(
            level=o["level"],
            reason=o["reason"],
            location=o["location"],
            contact=o["contact"],
            name=o["name"],
            field=o["field"],
            page=o["page"],
            rect=o["rect"],
            corner=o["corner"],
            text=o["text"],
            image=str(o["image"]) if o["image"] else None,
            layout=o["layout"],
            font_size=o["font_size"],
            anchor_text=o["anchor_text"],
            anchor_occurrence=o["anchor_occurrence"],
            anchor_position=o["anchor_position"],
            anchor_offset=o["anchor_offset"],
            box_size=o["box_size"],
            certify=o["certify"],
            docmdp=o["docmdp"],
            preset=o["preset"],
            seal_mm=o["seal_mm"],
            over_field=o["over_field"],
            doc_number=o["doc_number"],
            copy_form=o["copy_form"],
            copy_org=o["copy_org"],
        )
        password = _read_secret_file(o["password_file"], "password")
        return PdfFormat(defaults=defaults, password=password or secret_env("SIGNKIT_PDF_PASSWORD"))

    _sign_command(out, options, "sign pdf", make_format)


def _sign_command(
    out: Output, options: dict[str, Any], command: str, make_format: Callable[..., Any]
) -> None:
    """The body every `signkit sign FORMAT` shares: build the job, plan, sign
    with a progress bar, then report (summary, --json, --report) whatever
    happened, and exit with the one exit-code rule of every format."""
    state = get_state()
    argv = tuple(sys.argv[1:])
    audit = audit_spec(options)
    env_tsa_password = secret_env("SIGNKIT_TSA_PASSWORD")

    def body() -> int:
        from signkit.startup import imports_without_gc

        with imports_without_gc():
            import signkit.jobs.signing  # noqa: F401  (the heavy part, imported first)
        from signkit.errors import UsageError
        from signkit.jobs.report import BatchReport
        from signkit.jobs.signing import SignJobSpec, plan, sign_documents

        o = options
        if not o["inputs"] and not o["manifest"]:
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE",
                hint=f"signkit {command} --help",
            )
        report = BatchReport(command=command)
        try:
            spec = SignJobSpec(
                format=make_format(o),
                **_batch_fields(o, out, state.env_pin, env_tsa_password, audit, argv),
            )
        except BaseException as exc:
            _finish_failed(out, report, o["report_path"], exc)
            raise
        _run_batch(
            out,
            report,
            o["report_path"],
            lambda: plan(spec),
            functools.partial(sign_documents, spec),
            dry_run=spec.dry_run,
        )
        return report.exit_code()

    run_command(out, body)


def _batch_fields(
    o: dict[str, Any],
    out: Output,
    env_pin: Any,
    env_tsa_password: str | None,
    audit: Any,
    argv: tuple[str, ...],
) -> dict[str, Any]:
    """The job-spec fields every bulk signing command shares (PDF, XML)."""
    from signkit.audit.log import default_audit_path
    from signkit.jobs.engine import EngineSpec
    from signkit.jobs.outputs import OutputSpec
    from signkit.pki.anchors import TrustSpec, resolve_anchor
    from signkit.pki.timestamps import TsaSpec

    from .tokenspec import build_token_spec

    token = build_token_spec(
        module=o["module"],
        token_label=o["token_label"],
        token_serial=o["token_serial"],
        slot=o["slot"],
        key_label=o["key_label"],
        key_id=o["key_id"],
        cert_fingerprint=o["cert_fingerprint"],
        key_uri=o["key_uri"],
        pin_file=o["pin_file"],
        pin_stdin=o["pin_stdin"],
        pin_pad=o["pin_pad"],
        env_pin=env_pin,
    )
    tsa = None
    if o["tsa_url"]:
        tsa = TsaSpec(
            url=o["tsa_url"],
            policy=o["tsa_policy"],
            nonce=not o["tsa_no_nonce"],
            username=o["tsa_user"],
            password=_read_secret_file(o["tsa_password_file"], "TSA password") or env_tsa_password,
        )
    if o["no_audit"]:
        out.warn("audit log disabled (--no-audit): this run leaves no audit record")
        audit_path = None
    else:
        audit_path = o["audit_log"] or default_audit_path()
    return {
        "inputs": tuple(o["inputs"]),
        "recursive": o["recursive"],
        "manifest": o["manifest"],
        "outputs": OutputSpec(
            output=o["output"],
            output_dir=o["output_dir"],
            suffix=o["suffix"],
            in_place=o["in_place"],
            allow_absolute_outputs=o["allow_absolute_outputs"],
        ),
        "engine": EngineSpec(
            fail_fast=o["fail_fast"], force=o["force"], resign=o["resign"], limits=limits_from(o)
        ),
        "token": token,
        "trust": TrustSpec(
            anchors=tuple(resolve_anchor(str(v)) for v in o["trust"]),
            revocation=o["revocation"],
        ),
        "tsa": tsa,
        "digest_algorithm": o["digest"],
        "pss": o["pss"],
        "timezone": o["timezone"],
        "jobs": o["jobs"] or 0,
        "dry_run": o["dry_run"],
        "report_path": o["report_path"],
        "audit_path": audit_path,
        "audit": audit,
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
) -> None:
    """Plan, then sign with a progress bar, then report what happened (summary,
    --json, --report). A run-level error or a stop signal is re-raised once
    the report is out, for the exit code."""
    from signkit.tokens.guard import PinGuard, default_state_dir

    progress: _Progress | None = None

    class Events:
        def document_done(self, result: Any) -> None:
            if progress is not None:
                progress.document_done(result)

    try:
        docs = plan()
        progress = _Progress(out, 0 if dry_run else len(docs))
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


@group.command("xml")
@audit_options
@batch_options
@click.option(
    "--level",
    type=click.Choice(("plain", "B-B", "B-T", "B-LT")),
    default=None,
    help="plain XMLDSig, or XAdES B-B / B-T / B-LT [default: the preset's, else plain].",
)
@tsa_options
@trust_options
@click.option(
    "--digest",
    type=click.Choice(["sha256", "sha384", "sha512"]),
    default="sha256",
    show_default=True,
    help="Digest of the references and of the signature.",
)
@click.option("--pss", is_flag=True, help="RSASSA-PSS instead of PKCS#1 v1.5 (RSA keys).")
@click.option(
    "--preset",
    metavar="NAME",
    help="Document layout: vn-einvoice, vn-tax-declaration, "
    "or a [xml-presets.NAME] table of the config file.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Configuration file (default: $XDG_CONFIG_HOME/signkit/config.toml).",
)
@click.option(
    "--form",
    type=click.Choice(("enveloped", "enveloping", "detached")),
    default=None,
    help="Signature inside the document (default), the document inside the signature, "
    "or the signature in a file of its own (over the whole data file, or with "
    "--reference over one element of it).",
)
@click.option(
    "--reference", metavar="ID", help="Sign the element with this Id (default: the whole document)."
)
@click.option(
    "--id-attribute",
    "id_attributes",
    metavar="NAME",
    multiple=True,
    help="Another attribute that carries Ids (e.g. lower-case 'id'); repeatable.",
)
@click.option(
    "--signature-parent",
    metavar="XPATH",
    help="Element the Signature is appended to (default: the root element).",
)
@click.option("--signature-id", metavar="ID", help="Id of the Signature element.")
@click.option(
    "--c14n",
    type=click.Choice(("inclusive", "exclusive")),
    default=None,
    help="Canonicalisation (default: inclusive C14N 1.0).",
)
@click.option("--signer-role", metavar="TEXT", help="XAdES claimed signer role.")
@click.option(
    "--data-object-format", metavar="MIME", help="XAdES DataObjectFormat of the signed data."
)
@click.option(
    "--timezone",
    default="Asia/Ho_Chi_Minh",
    show_default=True,
    help="Zone of the signing time.",
)
@report_options
@limits_options
@token_options
@key_options
@pin_options
@output_options
def sign_xml(**options: Any) -> None:
    """Sign XML documents (XMLDSig, XAdES B-B/B-T/B-LT), one token session for the whole batch.

    The document's bytes are kept as they are: the Signature is inserted,
    nothing is reformatted. DTDs are refused; entities are never expanded.

    \b
    Examples:
      signkit sign xml inbox/*.xml --output-dir signed
      signkit sign xml -r invoices --preset vn-einvoice --output-dir signed
      signkit sign xml data.xml --level B-T --tsa http://tsa.example --signer-role "Kế toán"
    """
    out = Output.from_options(options)

    def make_format(o: dict[str, Any]) -> Any:
        from signkit.config import load_config
        from signkit.formats.xml_format import XmlFormat, build_options

        config = load_config(o["config_path"])
        return XmlFormat(
            defaults=build_options(
                preset=o["preset"],
                config=config,
                given={
                    "level": o["level"],
                    "form": o["form"],
                    "reference": o["reference"],
                    "id_attributes": ("Id", *o["id_attributes"]) if o["id_attributes"] else None,
                    "signature_parent": o["signature_parent"],
                    "signature_id": o["signature_id"],
                    "c14n": o["c14n"],
                    "signer_role": o["signer_role"],
                    "data_object_format": o["data_object_format"],
                },
            )
        )

    _sign_command(out, options, "sign xml", make_format)
