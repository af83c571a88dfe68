"""Profiles: a user's saved settings ([profiles.NAME] in config.toml) under --profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.infra import REPO, SoftHsm
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLE = REPO / "fixtures" / "samples" / "attachment.pdf"


def write_config(tmp_path: Path, trust: Path, audit: Path) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[profiles.clerk]
token_label = "signkit-test-a"
key_label = "signer-rsa2048"
trust = ["{trust}"]
audit_log = "{audit}"
reason = "Phê duyệt"

[profiles.broken]
token-label = "signkit-test-a"
no_such_option = 1
""",
        encoding="utf-8",
    )
    return config


def test_a_profile_supplies_the_settings(
    signkit: Runner,
    softhsm: SoftHsm,
    pki,
    tmp_path: Path,
    trust: Path,  # type: ignore[no-untyped-def]
) -> None:
    audit = tmp_path / "office-audit.jsonl"
    env = {
        "SIGNKIT_CONFIG": str(write_config(tmp_path, trust, audit)),
        "SIGNKIT_MODULE": softhsm.module,
        "SIGNKIT_PIN": softhsm.user_pin,
    }
    out = tmp_path / "o.pdf"
    proc = signkit(
        "--profile", "clerk", "sign", "pdf", str(SAMPLE), "-o", str(out), "--json", env=env
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["signer"]["chain_anchor"] == "configured"  # the profile's anchor
    # the control: without the profile the chain ends at the token's own root
    bare = signkit(
        "sign",
        "pdf",
        str(SAMPLE),
        "-o",
        str(tmp_path / "bare.pdf"),
        "--token-label",
        "signkit-test-a",
        "--key-label",
        "signer-rsa2048",
        "--no-audit",
        "--json",
        env=env,
    )
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout)["signer"]["chain_anchor"] == "token"
    assert audit.exists()  # the audit log where the profile puts it
    # an option on the command line wins over the profile
    other = tmp_path / "other-audit.jsonl"
    proc = signkit(
        "--profile",
        "clerk",
        "sign",
        "pdf",
        str(SAMPLE),
        "-o",
        str(tmp_path / "p.pdf"),
        "--audit-log",
        str(other),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert other.exists()


def test_unknown_profile_and_unknown_keys_are_config_errors(
    signkit: Runner, tmp_path: Path, trust: Path
) -> None:
    env = {"SIGNKIT_CONFIG": str(write_config(tmp_path, trust, tmp_path / "a.jsonl"))}
    proc = signkit("--profile", "nobody", "sign", "pdf", str(SAMPLE), env=env)
    assert proc.returncode == 5, proc.stderr
    assert "error: nobody: no profile of that name" in proc.stderr and "clerk" in proc.stderr
    proc = signkit("--profile", "broken", "sign", "pdf", str(SAMPLE), env=env)
    assert proc.returncode == 5, proc.stderr
    assert "profile keys not known to `signkit sign`: no_such_option" in proc.stderr
