"""Documents for verification tests: signed by pyHanko with the test PKI's keys, and tampered.

signkit itself refuses to sign with expired, revoked or not-yet-valid
certificates, and always embeds the chain; these helpers make the documents
it would not (the same keys as on token signkit-test-c, from fixtures/pki/keys).
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path
from typing import Any

from support.infra import REPO, TSA_URL, pki_certificate

SAMPLES = REPO / "fixtures" / "samples"
KEYS = REPO / "fixtures" / "pki" / "keys"


def pyhanko_sign(
    src: Path,
    dst: Path,
    label: str,
    *,
    md: str = "sha256",
    embed_chain: bool = True,
    timestamp: bool = False,
    field: str = "Sig1",
    certify: int | None = None,
) -> Path:
    """Sign ``src`` with the test PKI key ``label`` (PAdES B-B, or B-T with the test TSA)."""
    from asn1crypto import x509
    from pyhanko.keys import load_private_key_from_pemder
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers, timestamps
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = x509.Certificate.load(pki_certificate(label))
    key = load_private_key_from_pemder(KEYS / f"{label}.key.pem", passphrase=None)
    chain = [x509.Certificate.load(pki_certificate("interm-ca"))] if embed_chain else []
    signer = signers.SimpleSigner(
        signing_cert=cert,
        signing_key=key,
        cert_registry=SimpleCertificateStore.from_certs(chain),
    )
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        md_algorithm=md,
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=certify is not None,
        docmdp_permissions=fields.MDPPerm(certify) if certify else fields.MDPPerm.FILL_FORMS,
    )
    stamper = timestamps.HTTPTimeStamper(TSA_URL) if timestamp else None
    with src.open("rb") as fh:
        writer = IncrementalPdfFileWriter(fh, strict=False)
        out = signers.PdfSigner(meta, signer=signer, timestamper=stamper).sign_pdf(writer)
        dst.write_bytes(out.getvalue())
    return dst


def sample(tmp: Path, name: str = "decision.pdf") -> Path:
    """A copy of a sample PDF."""
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(SAMPLES / name, tmp / name))


def flip_signed_byte(src: Path, dst: Path) -> Path:
    """Change one byte of page content inside the signed range (same length)."""
    data = bytearray(src.read_bytes())
    match = re.search(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", data)
    assert match is not None
    start2 = int(match.group(3))
    # a byte in the first signed range, well inside the original document
    pos = int(match.group(2)) // 3
    while data[pos] in b"<>()[]/%\r\n \t" or pos >= start2:
        pos += 1
    data[pos] = data[pos] ^ 0x01
    dst.write_bytes(bytes(data))
    return dst


def _writer(src: Path) -> Any:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    return IncrementalPdfFileWriter(io.BytesIO(src.read_bytes()), strict=False)


def _finish(writer: Any, dst: Path) -> Path:
    buf = io.BytesIO()
    writer.write(buf)
    dst.write_bytes(buf.getvalue())
    return dst


def add_page(src: Path, dst: Path) -> Path:
    """Incremental update appending a blank page."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.content import RawContent

    w = _writer(src)
    page = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(v) for v in (0, 0, 595, 842)]
            ),
            generic.NameObject("/Contents"): w.add_object(
                generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 700 Td (Added) Tj ET")
            ),
            generic.NameObject("/Resources"): generic.DictionaryObject(),
        }
    )
    del RawContent
    w.insert_page(page)
    return _finish(w, dst)


def add_annotation(src: Path, dst: Path) -> Path:
    """Incremental update adding a text (comment) annotation to page 1."""
    from pyhanko.pdf_utils import generic

    w = _writer(src)
    page_ref = w.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    annot = w.add_object(
        generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Annot"),
                generic.NameObject("/Subtype"): generic.NameObject("/Text"),
                generic.NameObject("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (100, 100, 120, 120)]
                ),
                generic.NameObject("/Contents"): generic.TextStringObject("Đã xem"),
            }
        )
    )
    annots = page.get("/Annots")
    if annots is None:
        page[generic.NameObject("/Annots")] = generic.ArrayObject([annot])
    else:
        annots.get_object().append(annot)
    w.update_container(page)
    return _finish(w, dst)


def replace_content(src: Path, dst: Path, text: bytes = b"(Hidden text revealed) Tj") -> Path:
    """Shadow attack style: an incremental update swaps page 1's content stream."""
    from pyhanko.pdf_utils import generic

    w = _writer(src)
    page = w.root["/Pages"]["/Kids"][0].get_object()
    new = w.add_object(generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 600 Td " + text + b" ET"))
    page[generic.NameObject("/Contents")] = new
    w.update_container(page)
    return _finish(w, dst)


def remove_signature(src: Path, dst: Path) -> Path:
    """Incremental update dropping the signature field from the form."""
    from pyhanko.pdf_utils import generic

    w = _writer(src)
    acroform = w.root["/AcroForm"]
    acroform[generic.NameObject("/Fields")] = generic.ArrayObject()
    w.update_container(acroform)
    page = w.root["/Pages"]["/Kids"][0].get_object()
    if "/Annots" in page:
        page[generic.NameObject("/Annots")] = generic.ArrayObject()
        w.update_container(page)
    return _finish(w, dst)


def replace_certificate(src: Path, dst: Path, other: str = "signer-nolabel") -> Path:
    """Swap the signer certificate inside the CMS for another one (the bytes signed are intact)."""
    from asn1crypto import cms, x509

    data = bytearray(src.read_bytes())
    match = re.search(rb"/Contents\s*<([0-9a-fA-F]+)>", data)
    assert match is not None
    hexed = match.group(1)
    der = bytes.fromhex(hexed.decode())
    info = cms.ContentInfo.load(der.rstrip(b"\x00"))
    signed = info["content"]
    replacement = x509.Certificate.load(pki_certificate(other))
    original = signed["signer_infos"][0]["sid"].chosen
    certs = []
    for choice in signed["certificates"]:
        cert = choice.chosen
        same = (
            cert.serial_number == original["serial_number"].native
            and cert.issuer == original["issuer"]
        )
        certs.append(cms.CertificateChoices({"certificate": replacement}) if same else choice)
    signed["certificates"] = cms.CertificateSet(certs)
    # the signer identifier follows the certificate, as an attacker would do
    signed["signer_infos"][0]["sid"] = cms.SignerIdentifier(
        {
            "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                {"issuer": replacement.issuer, "serial_number": replacement.serial_number}
            )
        }
    )
    new = cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump().hex()
    assert len(new) <= len(hexed)
    padded = new.encode() + b"0" * (len(hexed) - len(new))
    data[match.start(1) : match.end(1)] = padded
    dst.write_bytes(bytes(data))
    return dst


def throwaway_pki(directory: Path, *, leaf_bits: int) -> tuple[Path, Path, Path]:
    """A self-made CA (RSA-2048) and a leaf with an RSA key of ``leaf_bits`` (for weak-key
    tests: the test PKI has no such key). Returns (ca.pem, leaf.pem, leaf-key.pem)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Throwaway CA"))
        .issuer_name(name("Throwaway CA"))
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=leaf_bits)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(f"Throwaway RSA-{leaf_bits} signer"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "leaf.pem", directory / "leaf-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def sign_with_files(src: Path, dst: Path, key: Path, cert: Path, ca: Path) -> Path:
    """PAdES B-B with a key and certificate from files."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signer = signers.SimpleSigner.load(str(key), str(cert), ca_chain_files=(str(ca),))
    assert signer is not None
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES
    )
    with src.open("rb") as fh:
        out = signers.PdfSigner(meta, signer=signer).sign_pdf(
            IncrementalPdfFileWriter(fh, strict=False)
        )
        dst.write_bytes(out.getvalue())
    return dst
