"""Per-run state handed from the entry point to commands, and the console IO."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from signkit.errors import ExitCode, SignkitError
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
def _console() -> Any:
    from rich.console import Console

    # Off a terminal (logs, cron mail) do not wrap tables at 80 columns.
    width = None if sys.stderr.isatty() else 1000
    return Console(stderr=True, highlight=False, soft_wrap=True, width=width)


def _line(text: str, *, style: str | None = None) -> None:
    """One line of text on stderr: through rich on a terminal (colour), plain
    otherwise (a script's log needs no styling, nor rich's ~50 ms import)."""
    if sys.stderr.isatty():
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


@dataclass(frozen=True, kw_only=True)
class Output:
    """How a command reports: human text on stderr, JSON on stdout."""

    json: bool = False
    """Machine output on stdout."""
    verbose: bool = False
    """More detail on stderr."""
    quiet: bool = False
    """Only errors on stderr."""
    debug: bool = False
    """Tracebacks on errors."""

    @classmethod
    def of(cls, options: OutputOptions) -> Output:
        """The output a command's --json, -v, -q and --debug ask for."""
        _library_logs(shown=options.verbose or options.debug)
        # a library's own English message inside ours: only when asked for
        show_details(options.verbose or options.debug)
        return cls(
            json=options.json_output,
            verbose=options.verbose,
            quiet=options.quiet,
            debug=options.debug,
        )

    def console(self) -> Any:
        """The one rich Console (stderr)."""
        return _console()

    def info(self, text: str) -> None:
        """A human line on stderr (suppressed by --quiet)."""
        if not self.quiet:
            _line(t(text))

    def warn(self, text: str) -> None:
        """A warning on stderr (shown even with --quiet)."""
        _line(f"{t('warning')}: {t(text)}", style="yellow")

    def emit_json(self, data: Any) -> None:
        """The machine report on stdout."""
        import json

        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        sys.stdout.flush()

    def show_error(self, exc: SignkitError) -> int:
        """Print ``error: <subject>: <reason>`` (+ hint); the error's exit code."""
        if self.debug:
            import traceback

            # The error itself and its cause chain: fail() is also called
            # outside the except block (a run error kept in the report), where
            # print_exc() would print "NoneType: None".
            traceback.print_exception(exc, file=sys.stderr)
        console = self.console()
        message = t(exc.message)
        text = f"{exc.subject}: {message}" if exc.subject else message
        console.print(f"{t('error')}: {text}", style="bold red", markup=False)
        if exc.hint:
            console.print(f"{t('hint')}: {t(exc.hint)}", markup=False)
        return int(exc.exit_code)

    def show_bug(self, exc: BaseException) -> int:
        """An exception signkit did not mean to raise: one line (the traceback
        only with --debug, and never the values of local variables); exit 70."""
        if self.debug:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        message = t("internal error ({name}); run again with --debug for a traceback and report it")
        self.console().print(
            f"{t('error')}: {message.replace('{name}', type(exc).__name__)}",
            style="bold red",
            markup=False,
        )
        return int(ExitCode.INTERNAL)

    def fail(self, exc: SignkitError) -> NoReturn:
        """Print the error (see show_error) and exit with its code."""
        raise typer.Exit(self.show_error(exc))


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
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
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
        out.console().print(f"{t('error')}: {t('interrupted')}", style="bold red", markup=False)
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
