"""Command-line interface (the only part that prints)."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import sys

# Commands whose workers import a heavy stack: started before anything else.
# (module, warm-up function) of each signing command's workers, and whether
# its worker stages are light (see signkit.workers.default_workers).
_PRESTART = {
    ("sign", "pdf"): ("signkit.formats.pdf.prepare", "worker_warmup_plain", False),
    ("sign", "xml"): ("signkit.formats.xml", "worker_warmup", True),
}
# Options that tell, before they are read, that a command's workers will need
# more than the light warm-up above, and the warm-up they get instead (the
# command corrects a wrong guess once its options are read: see start_pool).
_FULL_WARMUP = {
    ("sign", "pdf"): (
        ("--rect", "--anchor-text", "--preset", "--certify", "--over-field", "--password-file"),
        "worker_warmup",
    ),
}


def main() -> None:
    """Console-script entry point."""
    # Secrets leave the environment before the workers fork (see envsecrets),
    # and a stop signal (SIGTERM from systemd or `timeout`, SIGHUP from a
    # terminal that closed) acts as Ctrl-C.
    from signkit.envsecrets import capture
    from signkit.signals import install_stop_handlers

    capture()
    install_stop_handlers()
    _library_warnings(sys.argv[1:])
    _prestart_workers(sys.argv[1:])
    try:
        code = run()
    finally:
        # A run that ended before its job took the pre-started workers.
        workers = sys.modules.get("signkit.workers")
        if workers is not None:
            workers.stop_prestarted()
    # Everything is done: outputs renamed and synced, the audit log and the
    # token session closed, worker processes joined. Interpreter finalisation
    # would now spend ~0.2 s tearing down the PDF stack's object graphs for
    # nothing, so leave at once.
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # stdout closed early (e.g. `| head`)
        code = code or 1
    if getattr(sys.stdout, "broken", False):  # a write failed during the run
        code = code or 1
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def run(argv: list[str] | None = None, state: object | None = None) -> int:
    """Run the CLI on argv (default: sys.argv) and return the exit code."""
    # Take the secrets out of the environment before anything else runs, so no
    # child process (module probes, pdftotext, hooks) can inherit them.
    from signkit.envsecrets import capture, take
    from signkit.tokens.secret import Pin

    capture()
    args = sys.argv[1:] if argv is None else argv
    _library_warnings(args)
    pin_text = take("SIGNKIT_PIN")
    env_pin = Pin(pin_text) if pin_text else None
    if args == ["--version"]:
        # The one answer scripts ask for most; no need to build the CLI for it.
        from signkit import __version__

        sys.stdout.write(f"signkit {__version__}\n")
        return 0
    # Start-up allocates many long-lived objects (the framework, the command
    # tree): collecting them repeatedly is wasted time; freeze them once built.
    gc.disable()
    from signkit.cli.app import build_app, use_language
    from signkit.cli.context import AppState
    from signkit.i18n import choose_language

    # Until the root's --lang is read, usage errors follow the locale.
    use_language(choose_language(None))
    if "_SIGNKIT_COMPLETE" in os.environ:
        # A shell asks for completions (see `signkit completion`): Typer answers
        # once its completion classes are registered.
        from typer.completion import completion_init  # type: ignore[attr-defined]

        completion_init()
    command = build_app()
    gc.freeze()
    gc.enable()
    try:
        # Not standalone: the errors of the command line are shown below, in
        # the user's language, instead of by the framework in English.
        code = command.main(
            args=args,
            obj=state or AppState(env_pin=env_pin),
            prog_name="signkit",
            standalone_mode=False,
        )
    except SystemExit as exc:
        return _exit_code(exc.code)
    except Exception as exc:  # raised outside a command's own handler
        code = _outside_command(exc, debug="--debug" in args)
        return _nagios_answer(args, exc, code)
    return code if isinstance(code, int) else 0


def _outside_command(exc: Exception, *, debug: bool) -> int:
    """An error raised while the options were read (a profile, a --config
    file) is said in one line, with its exit code; anything else is a bug."""
    import typer

    from signkit.cli.context import Output, show_usage_error
    from signkit.errors import SignkitError
    from signkit.i18n import t

    out = Output(debug=debug)
    if isinstance(exc, SignkitError):
        return out.show_error(exc)
    if isinstance(exc, typer.TyperException):  # click's usage errors
        return show_usage_error(exc)
    if isinstance(exc, typer.Abort):
        sys.stderr.write(t("Aborted!") + "\n")
        return 1
    return out.show_bug(exc)


def _nagios_answer(args: list[str], exc: Exception, code: int) -> int:
    """A monitoring check whose command line could not be read still answers
    with one status line, UNKNOWN (exit 3), as the plugin guidelines ask."""
    pairs = list(itertools.pairwise(args))
    nagios = "--nagios" in args or "--format=nagios" in args or ("--format", "nagios") in pairs
    if ("cert", "check") not in pairs or not nagios:
        return code
    from signkit.verify.certcheck import nagios_unknown

    reason = getattr(exc, "format_message", lambda: str(exc))()
    status, line = nagios_unknown(f"usage: {reason}" if code == 2 else str(reason))
    sys.stdout.write(line + "\n")
    return status


def _library_warnings(args: list[str]) -> None:
    """Python warnings come from the libraries signkit uses (a deprecation in
    cryptography seen from pyHanko) and speak to their developers, not to the
    clerk: shown only with --debug. Set before the workers fork, which keep it."""
    if "--debug" not in args:
        import warnings

        warnings.simplefilter("ignore")


def _prestart_workers(args: list[str]) -> None:
    """For a signing run, fork its workers now (see signkit.workers.prestart).
    Only for a plain batch: not for help, a dry run, a chosen worker count or
    a configuration file named on the command line."""
    words = [a for a in args if not a.startswith("-")][:2]
    found = _PRESTART.get((words[0], words[1])) if len(words) == 2 else None
    if found is None or args[:2] != list(words):
        return
    # --config is read by the workers too (user presets): they must start
    # after the CLI has put it in their environment.
    # --debug: the workers print a bug's traceback, which the CLI turns on
    # (signkit.errors.show_tracebacks) before it forks them.
    skip = ("--help", "-h", "--dry-run", "--jobs", "--config", "--debug")
    if any(a in skip or a.startswith(("--jobs=", "--config=")) for a in args):
        return
    from signkit.workers import prestart

    module, function, light = found
    hints, full = _FULL_WARMUP.get((words[0], words[1]), ((), function))
    if any(a.split("=", 1)[0] in hints for a in args):
        function = full
    prestart((module, function), light=light)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1
