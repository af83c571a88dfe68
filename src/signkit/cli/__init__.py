"""Command-line interface (the only part that prints)."""

from __future__ import annotations

import gc
import os
import sys


def main() -> None:
    """Console-script entry point."""
    # Take the PIN out of the environment before anything else runs, so no
    # child process (module probes, referees, hooks) can inherit it.
    from signkit.tokens.secret import take_env_pin

    env_pin = take_env_pin(os.environ)
    if sys.argv[1:] == ["--version"]:
        # The one answer scripts ask for most; no need to build the CLI for it.
        from signkit import __version__

        sys.stdout.write(f"signkit {__version__}\n")
        return
    # Start-up allocates many long-lived objects (click, the command tree):
    # collecting them repeatedly is wasted time; freeze them once built.
    gc.disable()
    from signkit.cli.app import build_app
    from signkit.cli.context import AppState

    app = build_app()
    gc.freeze()
    gc.enable()
    app.main(obj=AppState(env_pin=env_pin), prog_name="signkit")
