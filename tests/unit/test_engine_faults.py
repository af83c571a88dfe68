"""Faults inside the pipeline: a bug must look like a bug (exit 70), a bad
file like a bad file (exit 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from signkit.errors import InputFormatError
from signkit.formats.pdf import PdfDocOptions
from signkit.formats.pdf import plain as pdf_plain
from signkit.formats.pdf import prepare as pdf_prepare
from support.cmscheck import self_signed
from support.infra import FIXTURES, pki_certificate

SAMPLES = FIXTURES / "samples"


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


@pytest.mark.parametrize(
    ("module", "name"),
    [(pdf_prepare, "_free_field_name"), (pdf_plain, "_first_page")],
    ids=["pyhanko-path", "plain-path"],
)
def test_a_bug_inside_signkit_is_not_reported_as_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: object, name: str
) -> None:
    """Regression: a TypeError or AttributeError raised by signkit's own code
    while preparing a PDF became "cannot sign this PDF" (exit 3). The plain
    path's own code is signkit's too: its bug is not a reason to fall back."""

    def broken(*_args: object) -> str:
        raise TypeError("a bug in signkit")

    monkeypatch.setattr(module, name, broken)
    if module is pdf_prepare:  # the general path: a document the plain path leaves
        monkeypatch.setattr(pdf_plain, "eligible", lambda *_a, **_k: False)
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


@pytest.mark.parametrize(
    ("tamper", "intact"), [(None, True), (10, False), (120, True), (299, False), ("cut", False)]
)
@pytest.mark.parametrize(
    ("algorithm", "chunk"), [("sha256", None), ("sha256", 7), ("sha256", 50), ("sha384", 7)]
)
def test_the_pdf_self_check_reads_every_signed_byte(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tamper: object,
    intact: bool,
    algorithm: str,
    chunk: int | None,
) -> None:
    """The finish stage's re-read: one pass that hashes the signed byte ranges
    (everything but the reserved /Contents) and the whole file, whatever the
    read size (the reserved region inside a read or starting one), and with
    SHA-256 the two hashes sharing the bytes before /Contents."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    from signkit.errors import DocumentError
    from signkit.formats.pdf import finish

    cert_der, key = self_signed()
    data = bytearray(bytes(range(256)) + bytes(range(44)))  # 300 bytes
    start, end = 100, 140  # the reserved region
    if chunk is not None:
        monkeypatch.setattr(finish, "CHUNK", chunk)
    digest = hashlib.new(algorithm, bytes(data[:start]) + bytes(data[end:])).digest()
    to_sign = b"signed attributes"
    hash_algorithm = hashes.SHA256() if algorithm == "sha256" else hashes.SHA384()
    signature = key.sign(to_sign, padding.PKCS1v15(), hash_algorithm)  # type: ignore[attr-defined]
    if tamper == "cut":
        data = data[:-1]
    elif isinstance(tamper, int):
        data[tamper] ^= 1
    path = tmp_path / "signed.pdf"
    path.write_bytes(bytes(data))
    config = pdf_prepare.PdfBatchConfig(
        signer_der=cert_der,
        chain_der=(),
        digest_algorithm=algorithm,
        scheme="pkcs1v15",
        bytes_reserved=40,
        tsa=None,
    )
    prepared = pdf_prepare.Prepared(
        config=config,
        index=0,
        temp=str(path),
        to_sign=to_sign,
        document_digest=digest,
        reserved_start=start,
        reserved_end=end,
        signed_length=300,
        sha256_before="",
        signing_time="",
        level="B-B",
    )
    with path.open("rb") as fh:
        if intact:  # a changed byte inside the reserved region is not signed
            whole = finish.check_signature(fh, prepared, signature, config)
            assert whole == hashlib.sha256(data).hexdigest()
        else:
            with pytest.raises(DocumentError, match="does not hash to the signed digest"):
                finish.check_signature(fh, prepared, signature, config)
