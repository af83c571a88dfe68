"""The user's TOML configuration file (one table per kind of setting).

Default path ``$XDG_CONFIG_HOME/signkit/config.toml`` (``~/.config`` when
unset); ``--config PATH`` names another. Each top-level table holds named
entries, e.g. ``[xml-presets.my-layout]``; profiles can be added the same way.
A missing default file is an empty configuration; a missing explicit one is
an error.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from signkit.errors import ConfigError


def default_config_path() -> Path:
    """``$XDG_CONFIG_HOME/signkit/config.toml``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "signkit" / "config.toml"


@dataclass(frozen=True)
class Config:
    """A parsed configuration file."""

    path: Path | None
    """Where it was read from (None: no file)."""
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    """Top-level tables by name."""

    def section(self, name: str) -> Mapping[str, Mapping[str, Any]]:
        """The named entries of one top-level table (empty when absent)."""
        table = self.tables.get(name, {})
        for key, value in table.items():
            if not isinstance(value, Mapping):
                raise ConfigError(
                    f"[{name}] entry '{key}' must be a table ([{name}.{key}])",
                    subject=str(self.path),
                )
        return table


def load_config(path: Path | None) -> Config:
    """Read ``path`` (or the default file, if it exists)."""
    explicit = path is not None
    target = path if path is not None else default_config_path()
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise ConfigError("configuration file not found", subject=str(target)) from None
        return Config(path=None)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration ({exc.strerror})", subject=str(target)
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML ({exc})", subject=str(target)) from None
    return Config(path=target, tables=MappingProxyType(data))
