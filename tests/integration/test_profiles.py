"""Profiles: a user's saved settings ([profiles.NAME] in config.toml) under --profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.infra import FIXTURES, SoftHsm
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLE = FIXTURES / "samples" / "attachment.pdf"


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
    assert "profile keys that no signkit option takes: no_such_option" in proc.stderr


def test_one_profile_serves_every_command(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, trust: Path
) -> None:
    """Regression: profiles were checked against the command group, so
    SIGNKIT_PROFILE set to a signing profile made `token list` and `verify`
    exit 5 (reason, key_label: no option of theirs). Each command now takes
    the keys it knows; only a key no command knows is refused."""
    env = {
        "SIGNKIT_CONFIG": str(write_config(tmp_path, trust, tmp_path / "a.jsonl")),
        "SIGNKIT_PROFILE": "clerk",
        "SIGNKIT_MODULE": softhsm.module,
        "SIGNKIT_PIN": softhsm.user_pin,
    }
    signed = tmp_path / "signed.pdf"
    proc = signkit("sign", "pdf", str(SAMPLE), "-o", str(signed), "--revocation", "off", env=env)
    assert proc.returncode == 0, proc.stderr
    listed = signkit("token", "list", env=env)
    assert listed.returncode == 0 and "signkit-test-a" in listed.stdout, listed.stderr
    # verify takes the profile's trust anchors and audit log, and ignores reason/key_label
    verified = signkit("verify", str(signed), "--revocation", "off", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["documents"][0]["verdict"]["indication"] == "PASSED"
    records = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert {r.get("command") for r in records if r["type"] == "run-start"} >= {"verify"}
    checked = signkit("cert", "check", "--json", "--no-audit", env=env)
    assert checked.returncode == 0, checked.stderr  # token_label and key_label: one certificate
    assert len(json.loads(checked.stdout)["certificates"]) == 1
