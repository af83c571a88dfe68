"""What every `signkit sign FORMAT` shares: the signing options, the option
groups handed to one body, and that body (plan, sign on one token session,
report, exit with the one exit-code rule of every format)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .context import Output, TerminalPinIO, get_state, run_command
from .options import (
    AuditOptions,
    AuditSealOptions,
    BatchOptions,
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
    """The option groups every `signkit sign FORMAT` takes after its inputs,
    batch and format options (spread into the command's options by
    ``grouped``), handed to the shared body."""

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


def pdf_password(password_file: Path | None) -> str | None:
    """The password of encrypted PDFs: --password-file, else SIGNKIT_PDF_PASSWORD."""
    return read_secret_file(password_file, "password") or secret_env("SIGNKIT_PDF_PASSWORD")


def read_secret_file(path: Path | None, what: str) -> str | None:
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
    """What the run did: the documents that failed or were left for a later
    run on stderr, at error priority (one document: its error line); with -v
    or --dry-run the others listed on stdout, unless --json stands in for
    them; then the counts on stderr (kept with -q)."""
    from signkit.i18n import t

    totals = report.totals()
    failed = [d for d in report.documents if d.status.value == "failed"]
    failed += report.left_for_later()
    if len(report.documents) == 1 and failed:
        # One document: its error on one line, as for any other bad input.
        show_alone(out, failed[0])
        return
    shown = {id(d) for d in failed}
    listed = [d for d in report.documents if id(d) not in shown]
    if (out.verbose or report.dry_run) and not out.json and listed:
        out.table(documents_table(listed))
    if failed:
        out.failures(documents_table(failed))
        if any(d.met_a_bug for d in failed):
            from signkit.jobs.report import BUG_HINT

            out.hint(BUG_HINT)
    if report.dry_run:
        line = t("dry run: {planned} planned, {skipped} skipped (of {total})")
    else:
        line = t(
            "{signed} signed, {skipped} skipped, {failed} failed, "
            "{not_attempted} not attempted (of {total})"
        )
    out.summary(line.format(**{k.replace("-", "_"): v for k, v in totals.items()}))


def show_alone(out: Output, doc: Any) -> None:
    """The one document of a run that failed, or that another run holds, as
    its one error line."""
    from signkit.i18n import t

    if doc.met_a_bug:
        # Its message is the exception's, which names no file.
        out.error(f"{doc.input}: {doc.error_message}", doc.error_hint)
    elif doc.status.value == "failed":
        out.error(doc.error_message or "", doc.error_hint)
    else:
        reason = t(doc.reason or "")
        out.error(f"{doc.input}: " + t("not attempted ({reason})").replace("{reason}", reason))


def documents_table(documents: list[Any], words: dict[str, str] | None = None) -> Any:
    """A table of documents: status (``words`` renames one), input, and the
    output or the reason."""
    from rich.table import Table

    from signkit.i18n import t

    table = Table(box=None, pad_edge=False, show_header=True)
    for col in ("status", "input", "output / reason"):
        table.add_column(t(col))
    for d in documents:
        table.add_row(
            t((words or {}).get(d.status.value, d.status.value)),
            d.input,
            t(d.error_message or d.reason or "") or d.output or "",
        )
    return table


def sign_command(
    ctx: typer.Context,
    inputs: InputOptions,
    batch: BatchOptions,
    run: SignRun,
    command: str,
    make_format: Callable[[], Any],
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

        if not inputs.given():
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE",
                hint=f"signkit {command} --help",
            )
        report = BatchReport(command=command, shard=inputs.shard)
        report_path = run.report.report_path
        try:
            spec = SignJobSpec(
                format=make_format(),
                **_batch_fields(inputs, batch, run, out, state.env_pin, env_tsa_password, argv),
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
            require_input=inputs.require_input,
            progress_every=run.progress.progress_every,
        )
        return report.exit_code()

    run_command(out, body)


def _batch_fields(
    inputs: InputOptions,
    batch: BatchOptions,
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
        password = read_secret_file(run.tsa.tsa_password_file, "TSA password")
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
    return {
        "inputs": tuple(inputs.inputs or ()),
        "recursive": inputs.recursive,
        "manifest": inputs.manifest,
        "shard": inputs.part(),
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
        with report.write(report_path) as written:
            if out.json:
                out.emit_report_file(written)
    elif out.json:
        out.emit_json_pieces(report.pieces())
    reached = any(d.status.value != "not-attempted" for d in report.documents)
    if reached or (report.documents and report.run_error is None):
        # A run that failed before its first document says so in one line.
        _summary(out, report)
