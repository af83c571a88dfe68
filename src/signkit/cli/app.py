"""The click application: root options and command groups.

Built on click directly (Typer's import alone took ~140-170 ms here, over
the 150 ms start-up budget for `signkit --help`; click takes ~85-105 ms).
Command groups are imported only when used: `signkit --help` lists them
from the table below without building their (many) options.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from signkit import __version__
from signkit.errors import EXIT_CODE_TABLE, SignkitError
from signkit.i18n import LANGUAGES, choose_language, set_language

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {code:>2}  {text}" for code, text in EXIT_CODE_TABLE
)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# name -> (module, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "token": ("signkit.cli.token", "group", "Find tokens, keys and certificates; check the PIN."),
    "sign": ("signkit.cli.sign", "group", "Sign documents in bulk with a token key."),
    "verify": ("signkit.cli.verify", "command", "Verify signed PDFs and XML in bulk."),
    "cert": ("signkit.cli.cert", "group", "Check certificates: expiry, chain, revocation."),
    "completion": ("signkit.cli.completion", "command", "Print the completion script for SHELL."),
    "audit": ("signkit.cli.audit", "group", "Check, read and rotate the tamper-evident audit log."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _help = entry
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def build_app() -> click.Group:
    """Assemble the CLI."""

    @click.group(
        name="signkit",
        cls=LazyGroup,
        context_settings=CONTEXT,
        epilog=EXIT_CODES_HELP,
        no_args_is_help=True,
    )
    @click.version_option(
        __version__, "--version", prog_name="signkit", message="%(prog)s %(version)s"
    )
    @click.option(
        "--lang",
        type=click.Choice(LANGUAGES),
        help="Language of messages and reports (default: from LC_ALL, LC_MESSAGES, LANG). "
        "JSON output stays in English.",
    )
    @click.option(
        "--profile",
        metavar="NAME",
        envvar="SIGNKIT_PROFILE",
        help="Saved settings from [profiles.NAME] in the config file "
        "($SIGNKIT_CONFIG, default ~/.config/signkit/config.toml); options given win.",
    )
    def app(lang: str | None, profile: str | None, **_: Any) -> None:
        """Sign and verify PDFs and XML with keys on PKCS#11 tokens, in bulk.

        PIN sources: the prompt (on a terminal), SIGNKIT_PIN (removed from the
        environment at start-up), --pin-file, --pin-stdin, or the reader's PIN pad.
        """
        set_language(choose_language(lang))
        if profile is not None:
            ctx = click.get_current_context()
            try:
                ctx.default_map = profile_defaults(ctx, profile)
            except SignkitError as exc:
                from signkit.cli.context import Output

                Output().fail(exc)

    return app


def profile_defaults(ctx: click.Context, name: str) -> dict[str, Any]:
    """click's default_map for the invoked command from ``[profiles.NAME]``: a
    profile's keys are long option names (token_label, level, tsa, trust,
    audit_log, …); what the command line gives still wins."""
    import os
    from pathlib import Path

    from signkit.config import load_config
    from signkit.errors import ConfigError

    env = os.environ.get("SIGNKIT_CONFIG")
    config = load_config(Path(env) if env else None)
    profiles = config.section("profiles")
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"no profile of that name in {config.path or 'the configuration'} (profiles: {known})",
            subject=name,
        )
    values = {key.replace("-", "_"): value for key, value in profiles[name].items()}
    group = ctx.command
    sub = ctx.invoked_subcommand
    command = group.get_command(ctx, sub) if isinstance(group, click.Group) and sub else None
    if command is None or sub is None:
        return {}
    leaves = (
        {n: command.get_command(ctx, n) for n in command.list_commands(ctx)}
        if isinstance(command, click.Group)
        else {sub: command}
    )
    accepted = {p.name for c in leaves.values() if c is not None for p in c.params}
    unknown = sorted(set(values) - accepted)
    if unknown:
        raise ConfigError(
            f"profile keys not known to `signkit {sub}`: {', '.join(unknown)}", subject=name
        )
    if isinstance(command, click.Group):
        return {sub: {n: values for n in leaves}}
    return {sub: values}
