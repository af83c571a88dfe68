"""`signkit trust`: bundles of roots, each certificate shown with its SHA-256
fingerprint before it is added (openssl computes the fingerprint the person
compares), then named by --trust; and the one rule `sign` and `cert check`
follow when no trust is configured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.infra import FIXTURES, REPO, PkiServices, SoftHsm, pki_certificate
from support.runner import Runner
from support.terminal import on_terminal
from support.verifydocs import pyhanko_sign, sample


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def root_file(tmp_path: Path) -> Path:
    path = tmp_path / "RootCA.crt"
    path.write_bytes(pki_certificate("root-ca"))
    return path


def openssl_fingerprint(path: Path) -> str:
    out = subprocess.run(
        [
            "openssl",
            "x509",
            "-inform",
            "DER",
            "-in",
            str(path),
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split("=", 1)[1]


def test_add_shows_fingerprints_and_needs_a_confirmation(
    signkit: Runner, config_home: Path, root_file: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(config_home)}
    empty = signkit("trust", "list", env=env)
    assert empty.returncode == 0 and "no trust bundle is installed" in empty.stderr
    refused = signkit("trust", "add", "vn-test", str(root_file), env=env, input="")
    assert refused.returncode == 2, refused.stderr
    assert openssl_fingerprint(root_file) in refused.stderr
    assert "nobody confirmed the fingerprints" in refused.stderr
    assert not (config_home / "signkit" / "trust" / "vn-test").exists()
    added = signkit("trust", "add", "vn-test", str(root_file), "--yes", env=env)
    assert added.returncode == 0, added.stderr
    assert "1 certificate(s) added to vn-test" in added.stderr
    listed = signkit("trust", "list", env=env)
    assert listed.stdout.startswith("vn-test  1 certificate(s)"), listed.stdout
    shown = signkit("trust", "show", "vn-test", "--json", env=env)
    (cert,) = json.loads(shown.stdout)["certificates"]
    assert cert["sha256"] == openssl_fingerprint(root_file) and cert["self_signed"]
    removed = signkit("trust", "remove", "vn-test", env=env)
    assert removed.returncode == 0, removed.stderr
    assert signkit("trust", "show", "vn-test", env=env).returncode == 5


@pytest.mark.pki
def test_verify_trusts_a_bundle_by_name(
    signkit: Runner, pki: PkiServices, config_home: Path, root_file: Path, tmp_path: Path
) -> None:
    env = {"XDG_CONFIG_HOME": str(config_home)}
    assert signkit("trust", "add", "vn-test", str(root_file), "--yes", env=env).returncode == 0
    doc = pyhanko_sign(sample(tmp_path), tmp_path / "signed.pdf", "signer-vn")
    proc = signkit("verify", str(doc), "--trust", "vn-test", "--no-audit", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["documents"][0]["verdict"]["indication"] == "PASSED"


def test_a_clerk_confirms_in_vietnamese(
    signkit: Runner, config_home: Path, root_file: Path
) -> None:
    session = on_terminal(
        [sys.executable, "-m", "signkit", "trust", "add", "vn-gov", str(root_file)],
        env=signkit.env({"XDG_CONFIG_HOME": str(config_home), "LANG": "vi_VN.UTF-8"}),
        cwd=REPO,
        replies=[("Thêm các chứng thư này? [c/K]", "c")],
    )
    assert session.prompts == 1, session.transcript
    assert session.returncode == 0, session.transcript
    assert "đã thêm 1 chứng thư số vào vn-gov" in session.transcript
    assert (config_home / "signkit" / "trust" / "vn-gov").is_dir()


@pytest.mark.softhsm
@pytest.mark.pki
def test_sign_and_cert_check_follow_one_rule_without_trust(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, tmp_path: Path
) -> None:
    """Regression: with no trust configured, `cert check` called the token's own
    chain UNTRUSTED (exit 5) while `sign` accepted it with a warning."""
    token = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    check = signkit("cert", "check", *token, "--no-audit", env=env)
    sign = signkit(
        "sign", "pdf", str(FIXTURES / "samples" / "attachment.pdf"),
        "-o", str(tmp_path / "o.pdf"), *token, "--no-audit", env=env,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert sign.returncode == 0, sign.stderr
    rule = (
        "no trust anchors configured (--trust): the chain ends at a root supplied by the "
        "token and was not checked against a trusted list"
    )
    assert rule in check.stderr and rule in sign.stderr, (check.stderr, sign.stderr)
