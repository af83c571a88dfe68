"""The TOML configuration file (one table per kind of setting).

One lookup serves profiles and every kind of preset: ``--config PATH``, else
``$SIGNKIT_CONFIG``, else ``$XDG_CONFIG_HOME/signkit/config.toml``
(``~/.config`` when unset), else ``/etc/signkit/config.toml``. The first one
found is the configuration; files are not merged. A file named by
``--config`` or ``$SIGNKIT_CONFIG`` must exist; without either and without
the two default files the configuration is empty.

Each top-level table holds named entries, e.g. ``[xml-presets.my-layout]``,
``[pdf-presets.NAME]``, ``[profiles.NAME]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from signkit.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/signkit/config.toml")
"""The system-wide configuration, the last place looked at."""


def default_config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/signkit/config.toml``: the user's configuration."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "signkit" / "config.toml"


def find_config(
    explicit: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    system: Path = SYSTEM_CONFIG,
) -> tuple[Path | None, bool]:
    """The configuration file to read (None: none), and whether it was named
    (``--config``, ``$SIGNKIT_CONFIG``) and so must exist."""
    if explicit is not None:
        return explicit, True
    named = environ.get("SIGNKIT_CONFIG")
    if named:
        return Path(named), True
    for candidate in (default_config_path(environ), system):
        if os.path.lexists(candidate):
            return candidate, False
    return None, False


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


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    system: Path = SYSTEM_CONFIG,
) -> Config:
    """The configuration: ``path`` (from ``--config``) or the first file the
    lookup finds (see the module's docstring)."""
    target, named = find_config(path, environ, system)
    if target is None:
        return Config(path=None)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        if named:
            raise ConfigError("configuration file not found", subject=str(target)) from None
        return Config(path=None)
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration ({exc.strerror})", subject=str(target)
        ) from None
    import tomllib  # only when a file is read: every start-up imports this module

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML ({exc})", subject=str(target)) from None
    return Config(path=target, tables=MappingProxyType(data))
