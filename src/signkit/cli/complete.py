"""Shell completion of option values: preset names, trust bundle names,
token labels (asked of the modules, without login)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _config_path(ctx: Any) -> Path | None:
    value = ctx.params.get("config_path") if ctx is not None else None
    return Path(value) if value else None


def _matching(names: list[str], incomplete: Any) -> list[str]:
    prefix = str(incomplete or "")
    return sorted({n for n in names if n.startswith(prefix)})


def _section(ctx: Any, name: str) -> list[str]:
    """The tables of ``[name.*]`` in the configuration (none when it cannot be read)."""
    from signkit.config import load_config
    from signkit.errors import SignkitError

    try:
        return [str(key) for key in load_config(_config_path(ctx)).section(name)]
    except (SignkitError, OSError, ValueError):
        return []


def pdf_presets(ctx: Any, incomplete: Any) -> list[str]:
    """Built-in and configured PDF presets."""
    from signkit.formats.pdf.presets import PRESETS

    return _matching([*PRESETS, *_section(ctx, "pdf-presets")], incomplete)


def xml_presets(ctx: Any, incomplete: Any) -> list[str]:
    """Built-in and configured XML presets."""
    from signkit.formats.xml.presets import BUILTIN

    return _matching([*BUILTIN, *_section(ctx, "xml-presets")], incomplete)


def trust_bundles(ctx: Any, incomplete: Any) -> list[str]:
    """Names of the installed trust bundles (a path is completed by the shell:
    nothing is offered for a value that looks like one)."""
    from signkit.pki.bundles import names

    text = str(incomplete or "")
    if "/" in text or text.startswith((".", "~")):
        return []
    return _matching(names(), text)


def token_labels(ctx: Any, incomplete: Any) -> list[str]:
    """Labels of the tokens the modules show (no login; each module probed in
    a child process with a short timeout, as `token list` does)."""
    from signkit.errors import SignkitError
    from signkit.tokens.access import TokenSpec, scan_modules

    module = (ctx.params.get("module") if ctx is not None else None) or os.environ.get(
        "SIGNKIT_MODULE"
    )
    try:
        scan = scan_modules(TokenSpec(module=module or None, probe_timeout=3.0))
    except (SignkitError, OSError):
        return []
    return _matching([t.label for r in scan.results for t in r.tokens], incomplete)
