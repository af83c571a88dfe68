"""Trust bundles by name (vn-gov, vn-public): installed by the user, found by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.infra import FIXTURES, pki_certificate

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLES = FIXTURES / "samples"
# the test-b token holds no chain: the root must come from the bundle
CLERK = ["--token-label", "signkit-test-b", "--key-label", "clerk-vn"]


def test_named_bundle_from_the_user_config(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config"
    bundle = config / "signkit" / "trust" / "vn-gov"
    bundle.mkdir(parents=True)
    (bundle / "root.der").write_bytes(pki_certificate("root-ca"))
    out = tmp_path / "o.pdf"
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *CLERK,
        "-o",
        str(out),
        "--trust",
        "vn-gov",
        "--json",
        env={"XDG_CONFIG_HOME": str(config)},
    )
    assert proc.returncode == 0, proc.stderr
    signer = json.loads(proc.stdout)["signer"]
    assert signer["chain_anchor"] == "configured", signer  # at the bundle's root


def test_missing_bundle_names_where_to_put_it(sk, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config"
    proc = sk(
        str(SAMPLES / "attachment.pdf"),
        *CLERK,
        "-o",
        str(tmp_path / "o.pdf"),
        "--trust",
        "vn-public",
        env={"XDG_CONFIG_HOME": str(config)},
    )
    assert proc.returncode == 5, proc.stderr
    assert "error: vn-public: no such trust file, and no trust bundle" in proc.stderr
    assert str(config / "signkit" / "trust" / "vn-public") in proc.stderr
    assert not (tmp_path / "o.pdf").exists()


def test_sign_xml_takes_a_bundle_name_too(signkit, softhsm, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config"
    bundle = config / "signkit" / "trust" / "vn-gov"
    bundle.mkdir(parents=True)
    (bundle / "root.der").write_bytes(pki_certificate("root-ca"))
    proc = signkit(
        "sign",
        "xml",
        str(FIXTURES / "xml" / "generic.xml"),
        "-o",
        str(tmp_path / "o.xml"),
        *CLERK,
        "--trust",
        "vn-gov",
        "--no-audit",
        "--json",
        env={
            "XDG_CONFIG_HOME": str(config),
            "SIGNKIT_MODULE": softhsm.module,
            "SIGNKIT_PIN": softhsm.user_pin,
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["signer"]["chain_anchor"] == "configured"
