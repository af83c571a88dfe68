"""`signkit verify`: PDFs, XML and CMS in bulk, EN 319 102-1 verdicts, no token needed."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

import typer

from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import (
    AuditOptions,
    ConfigOptions,
    InputOptions,
    LimitsOptions,
    OutputOptions,
    PdfPasswordFile,
    ProgressOptions,
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


# What each Decree 30 preset's field is, for people reading a verdict.
ROLES = {
    "ND30-Person": "leader's signature",
    "ND30-Org": "seal",
    "ND30-Number": "document number",
    "ND30-Date": "issue date",
    "ND30-Attachment": "attachment",
    "ND30-Copy": "electronic copy",
}


def verdict_label(indication: str) -> str:
    """PASSED / FAILED / INDETERMINATE; in Vietnamese HỢP LỆ / KHÔNG HỢP LỆ /
    CHƯA XÁC ĐỊNH with the ETSI code beside it (the catalogue says so)."""
    from signkit.i18n import t

    return t(indication)


def signer_of(subject: str | None) -> str:
    """'name, organisation' from an RFC 4514 subject (the full DN is for -v and JSON)."""
    if not subject:
        return ""
    values: dict[str, str] = {}
    for part in _rdns(subject):
        key, sep, value = part.partition("=")
        if sep:
            values.setdefault(key.strip().upper(), value.strip())
    name, org = values.get("CN", ""), values.get("O", "")
    if name == org:
        org = ""  # an organisation's own certificate
    return ", ".join(p for p in (name, org) if p) or subject


def _rdns(subject: str) -> list[str]:
    """The attributes of an RFC 4514 string, split on unescaped commas and unescaped."""
    parts, current, escaped = [], "", False
    for ch in subject:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",+":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


class _Screen:
    """Lines for a person, on stdout (they are what was asked for): wrapped to
    the terminal's width with a hanging indent; piped, one line per item with
    no padding (for grep and cut)."""

    def __init__(self) -> None:
        import os
        import shutil

        self.tty = sys.stdout.isatty()
        width = os.environ.get("COLUMNS", "")
        if width.isdigit():
            self.width = int(width)
        else:
            self.width = shutil.get_terminal_size((100, 24)).columns
        if self.tty:
            try:
                self.width = os.get_terminal_size(sys.stdout.fileno()).columns
            except OSError:
                pass

    def line(self, text: str, indent: int = 0) -> None:
        """``text`` (parts joined by two spaces keep their own spaces: a name
        and its organisation are not split over two lines)."""
        import textwrap

        if not self.tty:
            sys.stdout.write(" " * indent + text.replace(_KEEP, " ") + "\n")
            return
        for part in textwrap.wrap(
            text,
            width=max(40, self.width),
            initial_indent=" " * indent,
            subsequent_indent=" " * (indent + 4),
            break_on_hyphens=False,
            break_long_words=True,
        ) or [""]:
            sys.stdout.write(part.replace(_KEEP, " ") + "\n")


# Where a line of the verdict must not be broken (textwrap breaks at ASCII
# white space only).
_KEEP = "\u00a0"


def _whole(text: str) -> str:
    return text.replace(" ", _KEEP)


def _table(out: Output, report: Any, *, zone: str, roots: dict[str, str]) -> None:
    """One line per document (verdict, file), one per signature (field, role,
    signer, level, time), and why when it did not pass."""
    from zoneinfo import ZoneInfo

    from signkit.i18n import format_datetime, t

    tz = ZoneInfo(zone)
    screen = _Screen()

    def when(value: str | None) -> str:
        return format_datetime(datetime.fromisoformat(value).astimezone(tz)) if value else ""

    heading = None
    for d in report.documents:
        root = roots.get(d.input)
        name = os.path.relpath(d.input, root) if root else d.input
        if root is not None and root != heading:
            screen.line(f"{root.rstrip(os.sep)}{os.sep}")
            heading = root
        indent = 2 if root is not None else 0
        if d.verdict is None:
            if d.met_a_bug:
                label = t("INTERNAL ERROR")
            else:
                label = t("UNREADABLE") if d.status.value == "failed" else t(d.status.value)
            screen.line(f"{label}  {name}", indent)
            if d.error_message:
                reason = d.error_message
                if reason.startswith(f"{d.input}: "):
                    reason = reason[len(d.input) + 2 :]  # the file is on the line above
                screen.line(t(reason), indent + 4)
            if d.error_hint:
                screen.line(f"{t('hint')}: {t(d.error_hint)}", indent + 4)
            continue
        v = d.verdict_json()
        screen.line(f"{verdict_label(v['indication'])}  {name}", indent)
        sigs = v["signatures"]
        if not sigs:
            screen.line(t(v["sentence"]), indent + 4)
        for n, s in enumerate(sigs):
            field = s["name"] or ""
            role = ROLES.get(field)
            what = f"#{n + 1} {field}" + (f" ({t(role)})" if role else "")
            parts = [what + ":"]
            if len(sigs) > 1:
                parts.append(verdict_label(s["indication"]))
            parts.append(signer_of(s["signer_subject"]) or t("unknown signer"))
            moment = when(s["timestamp_time"] or s["claimed_signing_time"])
            parts.append("  ".join(p for p in (s["level"] or "", moment) if p))
            screen.line("  ".join(_whole(p) for p in parts if p), indent + 2)
            notes = []
            if s["indication"] != "PASSED" or out.verbose:
                sub = "" if s["sub_indication"] == "OK" else f"{s['sub_indication']}: "
                notes.append(sub + t(s["sentence"]))
                if s["sub_indication"] == "MODIFIED_AFTER_SIGNING" and s.get("detail"):
                    notes.append(t(s["detail"]))  # what changed: the page, the form, ...
            notes += [t(w) for w in s["warnings"]]
            for note in notes:
                screen.line(note, indent + 6)
            if out.verbose and s["signer_subject"]:
                screen.line(s["signer_subject"], indent + 6)


def _summary(
    out: Output, report: Any, *, zone: str = "Asia/Ho_Chi_Minh", roots: dict[str, str] | None = None
) -> None:
    """The verdicts on stdout (unless --json stands in for them), and the
    counts: on stdout after the verdicts, on stderr beside --json."""
    if report.dry_run:
        if not out.json:
            out.result(f"dry run: {len(report.documents)} document(s) would be verified")
            for d in report.documents:
                out.result(f"  {d.input}")
        return
    if not out.json:
        _table(out, report, zone=zone, roots=roots or {})
    from signkit.i18n import t

    counts = report.verdicts()
    failed = [d for d in report.documents if d.status.value == "failed"]
    bugs = sum(1 for d in failed if d.met_a_bug)
    skipped = sum(1 for d in report.documents if d.status.value == "not-attempted")
    # One catalogue entry per combination of the optional counts.
    line = "{passed} passed, {indeterminate} indeterminate, {failed} failed"
    line += ", {unreadable} unreadable" if len(failed) > bugs else ""
    line += ", {bugs} met a bug in signkit" if bugs else ""
    line += ", {skipped} not attempted" if skipped else ""
    line += " (of {total})"
    (out.summary if out.json else out.result)(
        t(line).format(
            passed=counts["PASSED"],
            indeterminate=counts["INDETERMINATE"],
            failed=counts["FAILED"],
            unreadable=len(failed) - bugs,
            bugs=bugs,
            skipped=skipped,
            total=len(report.documents),
        )
    )


app = new_app("verify", "Verify signed PDFs, XML and CMS (.p7s, .p7m) in bulk.")


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
    password_file: PdfPasswordFile = None,
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
    extract_attachments: Annotated[
        Path | None,
        typer.Option(
            "--extract-attachments",
            metavar="DIR",
            file_okay=False,
            help="Write the attachments of each edXML package to DIR/PACKAGE/ (after verifying).",
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
    timezone: Annotated[
        str,
        typer.Option(
            "--timezone",
            metavar="ZONE",
            help="Zone every time is shown in (signing and time-stamp times).",
        ),
    ] = "Asia/Ho_Chi_Minh",
    report: ReportOptions,
    report_format: Annotated[
        Literal["json", "etsi", "pdf", "html"],
        typer.Option(
            "--report-format",
            help="--report as signkit's JSON, as an ETSI TS 119 102-2 XML validation report "
            "(PDF signatures), or for people: a PDF (PDF/A-2b, printable, signable) or one HTML "
            "file, a page per document, in the language of the messages.",
        ),
    ] = "json",
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report-dir",
            metavar="DIR",
            file_okay=False,
            help="With --report-format pdf|html: one report per document here (NAME.report.pdf).",
        ),
    ] = None,
    audit: AuditOptions,
    limits: LimitsOptions,
    progress: ProgressOptions,
    config: ConfigOptions,
    output_options: OutputOptions,
) -> None:
    """Verify signed PDFs, XML and CMS (.p7s, .p7m) in bulk.

    Each signature and each document gets an ETSI EN 319 102-1 verdict.

    \b
    Verdicts: PASSED, INDETERMINATE (sub-indication says what is missing),
    FAILED (altered, invalid signature value, forbidden change after signing).
    Exit 0 all PASSED, 1 any FAILED or unreadable, 6 worst INDETERMINATE,
    70 a document met a bug in signkit.
    \b
    Examples:
      signkit verify inbox/*.pdf --trust /etc/signkit/roots/
      signkit verify -r archive --trust roots.pem --offline --json > verdicts.json
      signkit verify old.pdf --trust roots.pem --at 2024-05-01T00:00:00+07:00
      signkit verify signed.pdf --extract-revision 1 -o as-signed.pdf
      signkit verify inbox/ --trust roots/ --report-format pdf --report report.pdf
    """
    out = Output.of(output_options)
    argv = tuple(sys.argv[1:])

    def body() -> int:
        from signkit.audit.log import default_audit_path
        from signkit.errors import ConfigError, EmptyShardError, NothingToDoError, UsageError
        from signkit.jobs.report import Spill
        from signkit.jobs.verify_job import (
            VerifyJobSpec,
            VerifyReport,
            plan,
            preload,
            verify_documents,
        )
        from signkit.pki.anchors import TrustSpec, anchors_from, require_anchors, resolve_anchor
        from signkit.verify.policy import VerifyPolicy

        if not inputs.given():
            raise UsageError(
                "give INPUT files or directories, or --manifest FILE", hint="signkit verify --help"
            )
        _check_zone(timezone)
        from .sign_run import pdf_password

        password = pdf_password(password_file)
        if extract_revision is not None:
            return _extract(out, inputs, extract_revision, output, password)
        if output is not None:
            raise UsageError("-o/--output goes with --extract-revision")
        etsi = report_format == "etsi"
        people = report_format in ("pdf", "html")
        if report_dir is not None and not people:
            raise UsageError("--report-dir goes with --report-format pdf or html")
        if people:
            _check_people_report(report_format, report.report_path, report_dir)
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
            password=password or None,
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
            shard=inputs.part(),
            policy=policy,
            jobs=jobs or 0,
            fail_fast=fail_fast,
            dry_run=dry_run,
            audit_path=audit_path,
            command_line=argv,
            limits=limits.limits(),
            thumbnails=people,
        )
        report_path = report.report_path
        if report_path is not None:
            from signkit.jobs.outputs import check_report_path

            check_report_path(report_path)
        # Each verdict waits in a temp file, not in memory, for the table and
        # the reports written at the end (an archive of 100,000 documents).
        results = VerifyReport(command="verify", shard=inputs.shard, store=Spill())
        skipped: list[Path] = []
        try:
            tasks = plan(spec, skipped=skipped)
        except NothingToDoError as exc:
            if inputs.require_input and not isinstance(exc, EmptyShardError):
                raise
            # An empty inbox: success, in one line (and an empty report).
            results.nothing_to_do = str(exc)
            if report_path is not None and not etsi:
                results.write(report_path).close()
            if out.json:
                out.emit_json_pieces(results.pieces())
            out.summary(f"nothing to do: {exc}")
            return 0
        if out.verbose:
            for path in skipped:
                out.info(f"skipped (not a PDF, XML or CMS signature file): {path}")
        roots = {str(task.input): str(task.root) for task in tasks if task.root is not None}
        from .progress import progress_for

        if not spec.dry_run:
            from signkit.startup import imports_without_gc

            # Imported before the workers fork and frozen, as `sign` does: no
            # collection in a worker walks (and copies) the stack again.
            with imports_without_gc():
                preload()
        shown = progress_for(
            out, 0 if spec.dry_run else len(tasks), every=progress.progress_every, what="verifying"
        )
        try:
            verify_documents(spec, events=shown, report=results, tasks=tasks, warn=out.warn)
        except KeyboardInterrupt as exc:
            # Stopped (Ctrl-C, SIGTERM): what was judged is still reported.
            shown.close()
            results.interrupted = int(getattr(exc, "signum", 2))
            if report_path is not None and not (etsi or people):
                results.write(report_path).close()
            if out.json:
                out.emit_json_pieces(results.pieces())
            _summary(out, results, zone=timezone, roots=roots)
            raise
        finally:
            shown.close()
        written: BinaryIO | None = None
        if report_path is not None and etsi:
            from signkit.verify.etsi import write_report

            write_report(results.etsi, report_path)
            if any(d.verdict and d.verdict["format"] == "xml" for d in results.documents):
                out.warn("the ETSI report covers PDF signatures only; XML verdicts are in --json")
        elif people:
            from signkit.i18n import language
            from signkit.verify.report import write_reports

            write_reports(
                results,
                fmt=report_format,
                lang=language(),
                zone=timezone,
                path=report_path,
                directory=report_dir,
            )
        elif report_path is not None:
            written = results.write(report_path)
        if written is not None:
            with written:
                if out.json:
                    out.emit_report_file(written)
        elif out.json:
            out.emit_json_pieces(results.pieces())
        _summary(out, results, zone=timezone, roots=roots)
        if extract_attachments is not None:
            from signkit.jobs.edxml_extract import extract_packages

            extract_packages(
                results.documents,
                extract_attachments,
                audit_path=audit_path,
                warn=out.warn,
                info=out.info,
            )
        return results.exit_code()

    run_command(out, body)


def _check_zone(zone: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from signkit.errors import UsageError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            "unknown time zone", subject=zone, hint="e.g. Asia/Ho_Chi_Minh or UTC"
        ) from None


def _check_people_report(fmt: str, report_path: Path | None, report_dir: Path | None) -> None:
    """A report for people needs somewhere to go."""
    from signkit.errors import UsageError

    if report_path is None and report_dir is None:
        raise UsageError(f"--report-format {fmt} writes --report FILE or --report-dir DIR")
    if report_dir is not None:
        from signkit.jobs.outputs import check_writable

        check_writable(report_dir)


def _extract(
    out: Output, inputs: InputOptions, revision: int, target: Path | None, password: str | None
) -> int:
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
    data = extract_revision(source, revision, password or None)
    try:
        atomic_write(target, data)
    except OSError as exc:
        raise OutputError(f"cannot write ({exc.strerror or exc})", subject=str(target)) from None
    out.summary(f"{target}: the revision signature {revision} covers ({len(data)} bytes)")
    if out.json:
        out.emit_json({"input": str(source), "output": str(target), "bytes": len(data)})
    return 0
