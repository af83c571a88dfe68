"""One configuration lookup: --config, $SIGNKIT_CONFIG, $XDG_CONFIG_HOME, /etc."""

from __future__ import annotations

from pathlib import Path

import pytest

from signkit.config import find_config, load_config
from signkit.errors import ConfigError


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    """A user's, a system's, a named and an explicit configuration, each
    saying where it lives."""
    paths = {
        "explicit": tmp_path / "explicit.toml",
        "named": tmp_path / "named.toml",
        "user": tmp_path / "xdg" / "signkit" / "config.toml",
        "system": tmp_path / "etc" / "signkit" / "config.toml",
    }
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'[profiles.where]\nreason = "{name}"\n', encoding="utf-8")
    return paths


def _reason(path: Path | None, environ: dict[str, str], system: Path) -> str:
    config = load_config(path, environ, system)
    return str(config.section("profiles")["where"]["reason"])


def test_the_first_place_found_wins(places: dict[str, Path]) -> None:
    env = {
        "SIGNKIT_CONFIG": str(places["named"]),
        "XDG_CONFIG_HOME": str(places["user"].parents[1]),
    }
    system = places["system"]
    assert _reason(places["explicit"], env, system) == "explicit"
    assert _reason(None, env, system) == "named"
    del env["SIGNKIT_CONFIG"]
    assert _reason(None, env, system) == "user"
    places["user"].unlink()
    assert _reason(None, env, system) == "system"
    places["system"].unlink()
    assert load_config(None, env, system).path is None  # nothing anywhere: empty


def test_a_named_file_must_exist_a_default_one_need_not(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(missing, {}, tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(None, {"SIGNKIT_CONFIG": str(missing)}, tmp_path / "none.toml")
    assert find_config(None, {"XDG_CONFIG_HOME": str(tmp_path)}, tmp_path / "none.toml") == (
        None,
        False,
    )


def test_an_unreadable_user_file_is_not_skipped_for_the_system_one(tmp_path: Path) -> None:
    """A broken ~/.config/signkit/config.toml is an error, not a silent fall-back
    to /etc (whose settings the user did not choose)."""
    user = tmp_path / "signkit" / "config.toml"
    user.mkdir(parents=True)  # a directory where the file should be
    system = tmp_path / "etc.toml"
    system.write_text("[profiles.x]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(None, {"XDG_CONFIG_HOME": str(tmp_path)}, system)
