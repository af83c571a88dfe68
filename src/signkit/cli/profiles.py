"""--config and --profile: the configuration every command reads, and a
profile's settings as the defaults of the command's options.

A profile (``[profiles.NAME]``) holds long option names (``token_label``,
``level``, ``tsa``, ``trust``, ``audit_log``, …): they become click's
``default_map`` of the command, so an option given on the command line (or
by its environment variable) still wins. Both options are eager: click
processes them before the others, and the second of the two to be processed
applies the profile, when both values are known.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

import typer

from signkit.config import load_config
from signkit.errors import ConfigError

from .framework import option_names

ROOT_META = "signkit.root"
"""``ctx.meta`` key of the --config and --profile given before the command."""


def config_option(**settings: Any) -> Any:
    """--config: before the command (`signkit --config F sign …`) or after it."""
    return typer.Option(
        "--config",
        metavar="FILE",
        dir_okay=False,
        help="Configuration file (profiles, presets). Default: $SIGNKIT_CONFIG, else "
        "$XDG_CONFIG_HOME/signkit/config.toml, else /etc/signkit/config.toml.",
        **settings,
    )


def profile_option(**settings: Any) -> Any:
    """--profile: before the command (`signkit --profile clerk sign …`) or after it."""
    return typer.Option(
        "--profile",
        metavar="NAME",
        help="Saved settings from [profiles.NAME] of the configuration "
        "[env SIGNKIT_PROFILE]; options given win.",
        **settings,
    )


def apply_config_option(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
    """Callback of --config and --profile."""
    if ctx.resilient_parsing:  # shell completion: nothing to apply
        return value
    other = "profile" if param.name == "config_path" else "config_path"
    if other not in ctx.params:
        return value  # the other one comes next and applies both
    given = {str(param.name): value, other: ctx.params[other]}
    root = ctx.meta.get(ROOT_META, {})
    config_path: Path | None = given["config_path"] or root.get("config_path")
    profile: str | None = given["profile"] or root.get("profile")
    if config_path is not None:
        # Presets are also read where the core looks them up, in worker
        # processes too: --config is $SIGNKIT_CONFIG for this run and its children.
        os.environ["SIGNKIT_CONFIG"] = str(config_path)
    if profile is not None:
        defaults = profile_defaults(ctx, profile, config_path)
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
    elif config_path is not None:
        load_config(config_path)  # a named file that is missing or broken is said first
    return value


def _leaves(command: Any, ctx: Any) -> list[Any]:
    """Every command under ``command`` (itself when it is one)."""
    if not hasattr(command, "list_commands"):
        return [command]
    found = []
    for name in command.list_commands(ctx):
        child = command.get_command(ctx, name)
        if child is not None:
            found += _leaves(child, ctx)
    return found


def _accepted(ctx: typer.Context) -> dict[str, str]:
    """Option name -> parameter name over every signkit command. A profile is
    checked against all of them, and each command takes the keys it knows:
    one profile (SIGNKIT_PROFILE=clerk) serves `sign pdf`, `verify` and
    `token list` alike, and only a key no command knows is a mistake."""
    root = ctx.find_root()
    names: dict[str, str] = {}
    for leaf in _leaves(root.command, root):
        names.update(option_names(leaf.params))
    return names


def profile_defaults(ctx: typer.Context, name: str, config_path: Path | None) -> dict[str, Any]:
    """The default_map of the command being parsed from ``[profiles.NAME]``."""
    config = load_config(config_path)
    profiles = config.section("profiles")
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        close = difflib.get_close_matches(name, list(profiles), n=1)
        raise ConfigError(
            f"no profile of that name in {config.path or 'the configuration'} (profiles: {known})",
            subject=name,
            hint=f"did you mean {close[0]}?" if close else None,
        )
    values = {str(key).replace("-", "_"): value for key, value in profiles[name].items()}
    accepted = _accepted(ctx)
    unknown = sorted(set(values) - set(accepted))
    if unknown:
        suggestions = [
            f"{close[0]} ({key})"
            for key in unknown
            if (close := difflib.get_close_matches(key, list(accepted), n=1))
        ]
        raise ConfigError(
            f"profile keys that no signkit option takes: {', '.join(unknown)}",
            subject=name,
            hint=f"did you mean {', '.join(suggestions)}?" if suggestions else None,
        )
    here = option_names(ctx.command.params)
    return {here[key]: value for key, value in values.items() if key in here}
