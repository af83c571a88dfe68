"""Faults inside the pipeline: a bug must look like a bug (exit 70), a bad
file like a bad file (exit 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signkit.errors import InputFormatError
from signkit.formats.pdf import PdfDocOptions
from signkit.formats.pdf import prepare as pdf_prepare
from support.infra import REPO, pki_certificate

SAMPLES = REPO / "fixtures" / "samples"


def item(tmp_path: Path, source: Path) -> pdf_prepare.PrepareItem:
    config = pdf_prepare.PdfBatchConfig(
        signer_der=pki_certificate("signer-rsa2048"),
        chain_der=(pki_certificate("interm-ca"),),
        digest_algorithm="sha256",
        scheme="pkcs1v15",
        bytes_reserved=16384,
        tsa=None,
    )
    return pdf_prepare.PrepareItem(
        index=0,
        input=str(source),
        temp=str(tmp_path / ".signkit-tmp-out.pdf"),
        options=PdfDocOptions(),
        config=config,
    )


def test_a_bug_inside_signkit_is_not_reported_as_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a TypeError or AttributeError raised by signkit's own code
    while preparing a PDF became "cannot sign this PDF" (exit 3)."""

    def broken(_writer: object) -> str:
        raise TypeError("a bug in signkit")

    monkeypatch.setattr(pdf_prepare, "_free_field_name", broken)
    with pytest.raises(TypeError, match="a bug in signkit"):
        pdf_prepare.worker_prepare(item(tmp_path, SAMPLES / "attachment.pdf"))


def test_a_malformed_pdf_is_a_bad_file(tmp_path: Path) -> None:
    """The same exception classes raised inside pyHanko on a broken file are input errors."""
    broken = tmp_path / "broken.pdf"
    data = (SAMPLES / "attachment.pdf").read_bytes()
    broken.write_bytes(data.replace(b"/Root", b"/Roo ", 1))
    with pytest.raises(InputFormatError) as err:
        pdf_prepare.worker_prepare(item(tmp_path, broken))
    assert err.value.exit_code == 3 and err.value.subject == str(broken)
