"""CAdES signature options: the settings of one signature, from the command
line or a manifest row, resolved and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from signkit.errors import UsageError

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
TIMESTAMPED = frozenset(("B-T", "B-LT", "B-LTA"))
LONG_TERM = frozenset(("B-LT", "B-LTA"))
DETACHED_EXTENSION = ".p7s"
ATTACHED_EXTENSION = ".p7m"
SIGNATURE_EXTENSIONS = (DETACHED_EXTENSION, ATTACHED_EXTENSION)


@dataclass(frozen=True, kw_only=True)
class CmsDocOptions:
    """Per-document signature settings (every field is also a manifest column)."""

    level: str = "B-B"
    """CAdES baseline level."""
    attached: bool = False
    """Embed the content in the signature (.p7m) instead of a detached .p7s."""
    pem: bool = False
    """Write PEM instead of DER."""

    @property
    def extension(self) -> str:
        """The signature file's extension."""
        return ATTACHED_EXTENSION if self.attached else DETACHED_EXTENSION


OVERRIDABLE = frozenset(f.name for f in fields(CmsDocOptions))


def _as_bool(value: str, column: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "y"):
        return True
    if low in ("0", "false", "no", "n", ""):
        return False
    raise UsageError(f"'{column}' must be true or false", subject=value)


def resolve_options(defaults: CmsDocOptions, overrides: Mapping[str, str]) -> CmsDocOptions:
    """Apply a manifest row's overrides, then validate."""
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        name = key.replace("-", "_")
        changes[name] = _as_bool(raw, key) if name in ("attached", "pem") else raw
    opts = replace(defaults, **changes)
    if opts.level not in LEVELS:
        raise UsageError(f"level must be one of {', '.join(LEVELS)}", subject=opts.level)
    return opts
