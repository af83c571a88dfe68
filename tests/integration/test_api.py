"""signkit.api: the library entry points sign, verify and check as the CLI does
(real SoftHSM and PKI; pdfsig and xmlsec1 judge what they write)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.cmscheck import check_timestamps, openssl_cms_verify, pem_files
from support.infra import FIXTURES, TSA_URL, PkiServices, SoftHsm, batch_of, pki_certificate
from support.pdfcheck import pdfsig
from support.xmlcheck import assert_xmlsec_ok

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

TOKEN = {"token_label": "signkit-test-a", "key_label": "signer-rsa2048"}


@pytest.fixture
def anchor(tmp_path: Path) -> Path:
    path = tmp_path / "root.der"
    path.write_bytes(pki_certificate("root-ca"))
    return path


def test_sign_pdfs_then_verify(
    softhsm: SoftHsm, pki: PkiServices, state_dir: Path, tmp_path: Path, anchor: Path
) -> None:
    from signkit import api

    src = batch_of(tmp_path / "in", 3)
    seen = []
    report = api.sign_pdfs(
        [src],
        output_dir=tmp_path / "out",
        module=softhsm.module,
        pin=softhsm.user_pin,
        trust=[anchor],
        reason="Phê duyệt",
        audit_log=tmp_path / "audit.jsonl",
        on_document=seen.append,
        **TOKEN,
    )
    assert report.exit_code() == 0 and report.totals()["signed"] == 3
    assert len(seen) == 3 and report.signer["chain_anchor"] == "configured"
    outputs = sorted((tmp_path / "out").glob("*.pdf"))
    assert len(outputs) == 3
    for out in outputs:
        assert "Signature is Valid" in pdfsig(out)
    verdicts = api.verify(outputs, trust=[anchor], audit_log=False)
    assert verdicts.exit_code() == 0
    assert [d.verdict["indication"] for d in verdicts.documents] == ["PASSED"] * 3
    assert '"type":"run-start"' in (tmp_path / "audit.jsonl").read_text()


def test_sign_xml_with_a_preset(
    softhsm: SoftHsm, pki: PkiServices, state_dir: Path, tmp_path: Path
) -> None:
    from signkit import api

    src = tmp_path / "hd.xml"
    shutil.copy(FIXTURES / "xml" / "einvoice.xml", src)
    report = api.sign_xml(
        [src],
        output=tmp_path / "hd-signed.xml",
        module=softhsm.module,
        pin=softhsm.user_pin,
        preset="vn-einvoice",
        revocation="off",
        audit_log=False,
        **TOKEN,
    )
    assert report.exit_code() == 0, report.documents
    assert_xmlsec_ok(tmp_path / "hd-signed.xml", tmp_path, id_attrs=("--id-attr:Id DLHDon",))


def test_sign_cms_then_extend_to_b_lta(
    softhsm: SoftHsm, pki: PkiServices, state_dir: Path, tmp_path: Path, anchor: Path
) -> None:
    from signkit import api

    src = tmp_path / "bang-luong.xlsx"
    shutil.copy(FIXTURES / "samples" / "attachment.pdf", src)
    report = api.sign_cms(
        [src], module=softhsm.module, pin=softhsm.user_pin, trust=[anchor], audit_log=False,
        **TOKEN,
    )  # fmt: skip
    assert report.exit_code() == 0, report.documents
    sig = tmp_path / "bang-luong.xlsx.p7s"
    root, _ = pem_files(tmp_path)
    assert openssl_cms_verify(sig, root, content=src).returncode == 0
    extended = api.extend(
        [sig], tsa=TSA_URL, trust=[anchor], audit_log=tmp_path / "audit.jsonl",
        report=tmp_path / "extend.json",
    )  # fmt: skip
    assert extended.exit_code() == 0 and extended.totals()["signed"] == 1, extended.documents
    assert '"command":"extend"' in (tmp_path / "extend.json").read_text().replace(" ", "")
    assert openssl_cms_verify(sig, root, content=src).returncode == 0
    assert check_timestamps(sig, src.read_bytes(), "B-LTA", tmp_path) == []
    verdicts = api.verify([sig], trust=[anchor], offline=True, audit_log=False)
    assert verdicts.documents[0].verdict["signatures"][0]["level"] == "B-LTA"
    again = api.extend([sig], tsa=TSA_URL, trust=[anchor], audit_log=False)
    assert again.totals()["skipped"] == 1


def test_a_wrong_pin_raises_without_showing_it(
    softhsm: SoftHsm, pki: PkiServices, state_dir: Path, tmp_path: Path
) -> None:
    from signkit import api
    from signkit.errors import PinIncorrectError, PinUnavailableError

    src = batch_of(tmp_path / "in", 1)
    with pytest.raises(PinIncorrectError) as err:
        api.sign_pdfs(
            [src],
            output_dir=tmp_path / "out",
            module=softhsm.module,
            pin="13579246",
            revocation="off",
            audit_log=False,
            **TOKEN,
        )
    assert err.value.exit_code == 4 and "13579246" not in f"{err.value!s}{err.value!r}"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # No PIN and nobody to ask: an error at once, never a prompt.
    with pytest.raises(PinUnavailableError):
        api.sign_pdfs(
            [src],
            output_dir=tmp_path / "out2",
            module=softhsm.module,
            revocation="off",
            audit_log=False,
            token_label="signkit-test-b",
            key_label="signer-rsa2048",
        )


def test_check_certificates(pki: PkiServices, tmp_path: Path, anchor: Path) -> None:
    from signkit import api

    cert = tmp_path / "signer.der"
    cert.write_bytes(pki_certificate("signer-rsa2048"))
    (status,) = api.check_certificates(files=[cert], trust=[anchor])
    assert status.state == "ok" and status.days_left > 30


def test_the_library_imports_no_cli_stack() -> None:
    """A document system importing signkit.api gets no Typer, click or rich."""
    code = (
        "import sys, signkit.api; "
        "print(sorted(m for m in ('typer', 'click', 'rich') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
