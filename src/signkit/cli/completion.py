"""`signkit completion SHELL`: print the shell completion script."""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def command(shell: str) -> None:
    """Print the completion script for SHELL.

    \b
    bash: signkit completion bash > ~/.local/share/bash-completion/completions/signkit
    zsh:  signkit completion zsh > "${fpath[1]}/_signkit"
    fish: signkit completion fish > ~/.config/fish/completions/signkit.fish
    """
    from click.shell_completion import get_completion_class

    root = click.get_current_context().find_root().command
    cls = get_completion_class(shell)
    if cls is None:  # click.Choice already limits SHELL; kept for type narrowing
        raise click.UsageError(f"unsupported shell {shell}")
    click.echo(cls(root, {}, "signkit", "_SIGNKIT_COMPLETE").source())
