"""Command-line interface (the only part that prints)."""

from __future__ import annotations

import os


def main() -> None:
    """Console-script entry point."""
    # Take the PIN out of the environment before anything else runs, so no
    # child process (module probes, referees, hooks) can inherit it.
    from signkit.tokens.pin import take_env_pin

    env_pin = take_env_pin(os.environ)
    from signkit.cli.app import build_app
    from signkit.cli.context import AppState

    build_app()(obj=AppState(env_pin=env_pin), prog_name="signkit")
