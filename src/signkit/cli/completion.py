"""`signkit completion SHELL`: print the shell completion script."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from .framework import command, grouped, new_app
from .options import ConfigOptions

app = new_app("completion", "Print the completion script for SHELL.")


@command(app, "completion")
@grouped
def completion(
    shell: Annotated[Literal["bash", "zsh", "fish"], typer.Argument(metavar="SHELL")],
    config: ConfigOptions,
) -> None:
    """Print the completion script for SHELL.

    \b
    bash: signkit completion bash > ~/.local/share/bash-completion/completions/signkit
    zsh:  signkit completion zsh > "${fpath[1]}/_signkit"
    fish: signkit completion fish > ~/.config/fish/completions/signkit.fish
    """
    # The scripts Typer's own completion answers (see framework: main() of
    # its commands handles $_SIGNKIT_COMPLETE); typer.completion re-exports it.
    from typer.completion import get_completion_script  # type: ignore[attr-defined]

    typer.echo(
        get_completion_script(prog_name="signkit", complete_var="_SIGNKIT_COMPLETE", shell=shell)
    )
