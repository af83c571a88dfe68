"""One configuration for every command: --config (before or after the command),
$SIGNKIT_CONFIG, the user's and the system's file; profiles by long option
names; "did you mean" for what is misspelt. Signed outputs are checked by
pdfsig and xmlsec1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support.infra import FIXTURES, TSA_URL, PkiServices, SoftHsm, pki_certificate
from support.pdfcheck import pdfsig
from support.runner import Runner
from support.xmlcheck import assert_xmlsec_ok

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLE = FIXTURES / "samples" / "attachment.pdf"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "root.der"
    path.write_bytes(pki_certificate("root-ca"))
    return path


@pytest.fixture
def env(softhsm: SoftHsm, tmp_path: Path) -> dict[str, str]:
    """A scheduled job's environment, with no configuration of its own."""
    return {
        "SIGNKIT_MODULE": softhsm.module,
        "SIGNKIT_PIN": softhsm.user_pin,
        "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
    }


def test_sign_pdf_takes_config_for_a_user_preset(
    signkit: Runner, pki: PkiServices, tmp_path: Path, root: Path, env: dict[str, str]
) -> None:
    """Regression: `sign pdf` had no --config; a [pdf-presets.NAME] table was
    found only through $SIGNKIT_CONFIG or the default file."""
    config = tmp_path / "office.toml"
    config.write_text(
        """
[pdf-presets.so-van-ban]
summary = "our number stamp"
placement = "corner"
requires = ["doc_number"]
forbids = ["image"]

[pdf-presets.so-van-ban.options]
text = "Số: {doc_number}"
page = "1"
rect = "15,12,60,10"
corner = "top-left"
field = "So-Van-Ban"
""",
        encoding="utf-8",
    )
    out = tmp_path / "signed.pdf"
    proc = signkit(
        "sign",
        "pdf",
        str(SAMPLE),
        "-o",
        str(out),
        *KEY,
        "--config",
        str(config),
        "--preset",
        "so-van-ban",
        "--doc-number",
        "12/QĐ-UBND",
        "--trust",
        str(root),
        "--audit-log",
        str(tmp_path / "audit.jsonl"),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = pdfsig(out)
    assert "Signature is Valid" in report and "So-Van-Ban" in report
    # the same file named before the command, and a missing one
    again = signkit(
        "--config",
        str(config),
        "sign",
        "pdf",
        str(SAMPLE),
        "-o",
        str(tmp_path / "again.pdf"),
        *KEY,
        "--preset",
        "so-van-ban",
        "--doc-number",
        "13/QĐ-UBND",
        "--trust",
        str(root),
        "--no-audit",
        env=env,
    )
    assert again.returncode == 0, again.stderr
    assert "So-Van-Ban" in pdfsig(tmp_path / "again.pdf")
    missing = signkit("sign", "pdf", str(SAMPLE), "--config", str(tmp_path / "none.toml"), env=env)
    assert missing.returncode == 5
    assert f"error: {tmp_path / 'none.toml'}: configuration file not found" in missing.stderr


def test_xml_presets_are_found_where_profiles_are(
    signkit: Runner, pki: PkiServices, tmp_path: Path, root: Path, env: dict[str, str]
) -> None:
    """Regression: XML presets were read from --config or the default file
    only, while profiles and PDF presets also read $SIGNKIT_CONFIG."""
    config = tmp_path / "office.toml"
    config.write_text(
        '[xml-presets.cong-van]\nparent_path = ["congVan"]\nreference = "trich-yeu"\n'
        'level = "B-B"\nsigner_role = "Chánh văn phòng"\n',
        encoding="utf-8",
    )
    src = tmp_path / "generic.xml"
    shutil.copy(FIXTURES / "xml" / "generic.xml", src)
    out = tmp_path / "signed.xml"
    proc = signkit(
        "sign",
        "xml",
        str(src),
        "-o",
        str(out),
        *KEY,
        "--preset",
        "cong-van",
        "--trust",
        str(root),
        "--no-audit",
        env={**env, "SIGNKIT_CONFIG": str(config)},
    )
    assert proc.returncode == 0, proc.stderr
    signed = out.read_text(encoding="utf-8")
    assert 'URI="#trich-yeu"' in signed and "Chánh văn phòng" in signed
    assert_xmlsec_ok(out, tmp_path, id_attrs=("--id-attr:Id urn:signkit:test:congvan:trichYeu",))


def test_a_profile_uses_long_option_names_and_goes_after_the_command(
    signkit: Runner, pki: PkiServices, tmp_path: Path, root: Path, env: dict[str, str]
) -> None:
    """Regression: the README's profile (`tsa = …`) was refused (`tsa` was
    not known: the option's internal name was tsa_url), and --profile was
    taken only before the command. Values come as TOML gives them: one string
    for a repeatable option, an integer for a number of seconds."""
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[profiles.clerk]
token_label = "signkit-test-a"
key-label = "signer-rsa2048"
level = "B-T"
tsa = "{TSA_URL}"
trust = "{root}"
doc_timeout = 60
audit_log = "{tmp_path / "office-audit.jsonl"}"
""",
        encoding="utf-8",
    )
    out = tmp_path / "o.pdf"
    proc = signkit(
        "sign",
        "pdf",
        str(SAMPLE),
        "-o",
        str(out),
        "--config",
        str(config),
        "--profile",
        "clerk",
        "--json",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["documents"][0]["level"] == "B-T"  # needs the profile's TSA
    assert report["signer"]["chain_anchor"]  # the profile's trust anchor
    assert (tmp_path / "office-audit.jsonl").exists()
    assert "Signature is Valid" in pdfsig(out)


def test_misspelt_profile_names_and_keys_get_a_suggestion(
    signkit: Runner, tmp_path: Path, env: dict[str, str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.clerk]\ntokn_label = "signkit-test-a"\nlevel = "B-B"\n', encoding="utf-8"
    )
    env = {**env, "SIGNKIT_CONFIG": str(config)}
    proc = signkit("--profile", "clrk", "sign", "pdf", str(SAMPLE), env=env)
    assert proc.returncode == 5, proc.stderr
    assert "error: clrk: no profile of that name" in proc.stderr
    assert "hint: did you mean clerk?" in proc.stderr
    proc = signkit("sign", "pdf", str(SAMPLE), "--profile", "clerk", env=env)
    assert proc.returncode == 5, proc.stderr
    assert "error: clerk: profile keys that no signkit option takes: tokn_label" in proc.stderr
    assert "hint: did you mean token_label (tokn_label)?" in proc.stderr


def test_every_command_takes_config(signkit: Runner, tmp_path: Path) -> None:
    """Regression: only `sign xml` took --config."""
    missing = str(tmp_path / "none.toml")
    for args in (
        ["verify", "x.pdf"],
        ["cert", "check", "--file", "x.pem"],
        ["audit", "show"],
        ["audit", "verify"],
        ["audit", "rotate"],
        ["audit", "key"],
        ["sign", "xml", "x.xml"],
        ["token", "list"],
        ["token", "info"],
        ["completion", "bash"],
    ):
        proc = signkit(*args, "--config", missing)
        assert proc.returncode == 5, (args, proc.stderr)
        assert "configuration file not found" in proc.stderr, args
