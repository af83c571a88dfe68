"""Per-run state handed from the entry point to commands, and the console IO."""

from __future__ import annotations

import functools
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn

import typer

from signkit.errors import ExitCode, SignkitError, show_tracebacks
from signkit.i18n import show_details, t
from signkit.tokens.secret import Pin

if TYPE_CHECKING:
    from .options import OutputOptions


@dataclass(frozen=True, kw_only=True)
class AppState:
    """What the entry point captured before the CLI ran."""

    env_pin: Pin | None = None
    """SIGNKIT_PIN, removed from the environment at start-up."""


@functools.cache
def _console(stdout: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stdout if stdout else sys.stderr
    # Off a terminal (logs, cron mail, a pipe) do not wrap tables at 80 columns.
    width = None if stream.isatty() else 1000
    return Console(stderr=not stdout, highlight=False, soft_wrap=True, width=width)


# Syslog priorities (RFC 5424) of what signkit writes on stderr.
ERROR, WARNING, INFO = 3, 4, 6


@functools.cache
def journal_stderr() -> bool:
    """Whether stderr is the systemd journal's stream: $JOURNAL_STREAM names
    it (device:inode), as systemd documents, so a file or pipe that merely
    inherited the variable is not taken for the journal."""
    value = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    try:
        st = os.fstat(sys.stderr.fileno())
        return (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False


def _line(text: str, *, priority: int = INFO, style: str | None = None) -> None:
    """Text on stderr: prefixed with its syslog priority (``<3>``) when stderr is
    the journal, so that ``journalctl -p warning`` selects it; through rich on a
    terminal (colour); plain otherwise (a script's log needs no styling, nor
    rich's ~50 ms import)."""
    if journal_stderr():
        sys.stderr.write("".join(f"<{priority}>{line}\n" for line in text.splitlines() or [""]))
        sys.stderr.flush()
    elif sys.stderr.isatty():
        _console().print(text, style=style, markup=False)
    else:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _library_logs(*, shown: bool) -> None:
    """The libraries' own log lines (pyHanko's "Error during certificate fetch
    job, skipping..."): English, for developers; shown with -v or --debug,
    else dropped (Python would print their warnings on stderr by itself).
    Set before any worker is forked, so the workers do the same."""
    import logging

    root = logging.getLogger()
    if root.handlers:
        return
    if shown:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    else:
        root.addHandler(logging.NullHandler())


def render(renderable: Any, *, stdout: bool = False) -> str:
    """A rich table as plain text, as wide as its stream allows."""
    console = _console(stdout)
    with console.capture() as capture:
        console.print(renderable)
    text: str = capture.get()
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


@dataclass(frozen=True, kw_only=True)
class Output:
    """How a command reports. What the user asked for (listings, tables,
    verdicts) goes to stdout, or ``--json`` instead; warnings, progress,
    errors and the run's summary go to stderr."""

    json: bool = False
    """Machine output on stdout (instead of the tables)."""
    verbose: bool = False
    """More detail."""
    quiet: bool = False
    """On stderr, only errors and the summary."""
    debug: bool = False
    """Tracebacks on errors."""

    @classmethod
    def of(cls, options: OutputOptions) -> Output:
        """The output a command's --json, -v, -q and --debug ask for."""
        _library_logs(shown=options.verbose or options.debug)
        # a library's own English message inside ours: only when asked for
        show_details(options.verbose or options.debug)
        show_tracebacks(options.debug)  # of a bug met on one document, in a worker
        return cls(
            json=options.json_output,
            verbose=options.verbose,
            quiet=options.quiet,
            debug=options.debug,
        )

    def console(self) -> Any:
        """The rich Console of stderr (progress bars)."""
        return _console()

    def info(self, text: str) -> None:
        """A line of information on stderr (suppressed by --quiet)."""
        if not self.quiet:
            _line(t(text))

    def warn(self, text: str) -> None:
        """A warning on stderr (suppressed by --quiet)."""
        if not self.quiet:
            _line(f"{t('warning')}: {t(text)}", priority=WARNING, style="yellow")

    def summary(self, text: str) -> None:
        """The run's summary line on stderr (kept with --quiet)."""
        _line(t(text))

    def failures(self, table: Any) -> None:
        """A table of what failed, on stderr at error priority (kept with --quiet)."""
        if sys.stderr.isatty() and not journal_stderr():
            _console().print(table)
        else:
            _line(render(table), priority=ERROR)

    def result(self, text: str) -> None:
        """A line of what the user asked for, on stdout."""
        if sys.stdout.isatty():
            _console(stdout=True).print(t(text), markup=False)
        else:
            sys.stdout.write(t(text) + "\n")

    def table(self, table: Any) -> None:
        """A table of what the user asked for, on stdout (off a terminal without
        the padding after the last column, for the tools that read it)."""
        if sys.stdout.isatty():
            _console(stdout=True).print(table)
        else:
            text = render(table, stdout=True)
            sys.stdout.write("".join(line.rstrip() + "\n" for line in text.splitlines()))

    def emit_json(self, data: Any) -> None:
        """The machine report on stdout."""
        import json

        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def emit_json_pieces(self, data: dict[str, Any]) -> None:
        """A machine report on stdout, its Items one at a time (see
        signkit.jobs.report.stream_json and BatchReport.pieces)."""
        from signkit.jobs.report import stream_json

        stream_json(data, sys.stdout.write, default=str)  # as emit_json
        sys.stdout.flush()

    def emit_report_file(self, written: IO[bytes]) -> None:
        """A machine report as its --report file holds it (the file
        write_report returns), copied to stdout in pieces."""
        text = io.TextIOWrapper(written, encoding="utf-8", newline="")
        try:
            while chunk := text.read(1 << 16):
                sys.stdout.write(chunk)
        finally:
            text.detach()
        sys.stdout.flush()

    def error(self, text: str, hint: str | None = None) -> None:
        """``error: <text>`` (and the hint) on stderr, at error priority."""
        _line(f"{t('error')}: {t(text)}", priority=ERROR, style="bold red")
        if hint:
            self.hint(hint)

    def hint(self, text: str) -> None:
        """``hint: <text>`` on stderr, at error priority (what to do about an error)."""
        _line(f"{t('hint')}: {t(text)}", priority=ERROR)

    def show_error(self, exc: SignkitError) -> int:
        """Print ``error: <subject>: <reason>`` (+ hint); the error's exit code."""
        if self.debug:
            import traceback

            # The error itself and its cause chain: fail() is also called
            # outside the except block (a run error kept in the report), where
            # print_exc() would print "NoneType: None".
            traceback.print_exception(exc, file=sys.stderr)
        message = t(exc.message)
        self.error(f"{_subject(exc.subject)}: {message}" if exc.subject else message, exc.hint)
        return int(exc.exit_code)

    def show_bug(self, exc: BaseException) -> int:
        """An exception signkit did not mean to raise: one line (the traceback
        only with --debug, and never the values of local variables); exit 70."""
        if self.debug:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        message = t("internal error ({name}); run again with --debug for a traceback and report it")
        self.error(message.replace("{name}", type(exc).__name__))
        return int(ExitCode.INTERNAL)

    def fail(self, exc: SignkitError) -> NoReturn:
        """Print the error (see show_error) and exit with its code."""
        raise typer.Exit(self.show_error(exc))


def _subject(text: str) -> str:
    """What an error is about, in the user's language ("signer certificate
    '…'", "token"); a file's path as it is."""
    import os

    if os.sep in text or os.path.lexists(text):
        return text
    return t(text)


def show_usage_error(exc: typer.TyperException) -> int:
    """A usage error found while the command line was read, as click shows
    it (usage line, where to find help, the error), in the user's language."""
    ctx: Any = getattr(exc, "ctx", None)
    lines = []
    if ctx is not None:
        lines.append(ctx.get_usage())
        if ctx.command.get_help_option(ctx) is not None:
            hint = t("Try '{command} {option}' for help.")
            lines.append(hint.format(command=ctx.command_path, option=ctx.help_option_names[0]))
        lines.append("")
    lines.append(f"{t('Error')}: {t(exc.format_message())}")
    _line("\n".join(lines), priority=ERROR)
    return int(getattr(exc, "exit_code", 1))


def get_state(ctx: typer.Context) -> AppState:
    """The AppState of this run (an empty one under test runners)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, AppState) else AppState()


def run_command(out: Output, body: Callable[[], int]) -> NoReturn:
    """Run a command body, mapping every failure onto the exit-code table."""
    try:
        code = body()
    except SignkitError as exc:
        out.fail(exc)
    except KeyboardInterrupt as exc:
        out.error("interrupted")
        raise typer.Exit(int(getattr(exc, "exit_code", 130))) from None
    except typer.Exit:
        raise
    except Exception as exc:
        raise typer.Exit(out.show_bug(exc)) from None
    raise typer.Exit(code)


class TerminalPinIO:
    """PIN prompts on the controlling terminal; never echo, never stdout."""

    def interactive(self) -> bool:
        """True when stdin is a terminal."""
        return sys.stdin.isatty()

    def prompt_pin(self, prompt: str) -> str:
        """Ask for the PIN without echo."""
        import getpass

        return getpass.getpass(t(prompt), stream=sys.stderr)

    def confirm(self, question: str) -> bool:
        """Yes/no on stderr; anything but yes is no."""
        sys.stderr.write(f"{t(question)} {t('[y/N]')} ")
        sys.stderr.flush()
        # "có" (yes) is what a Vietnamese clerk types
        return sys.stdin.readline().strip().lower() in ("y", "yes", "c", "có")

    def read_stdin_pin(self) -> str:
        """One line from stdin, line ending removed."""
        return sys.stdin.readline().rstrip("\r\n")
