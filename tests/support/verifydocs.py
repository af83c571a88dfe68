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

from support.infra import FIXTURES, TSA_URL, pki_certificate

SAMPLES = FIXTURES / "samples"
KEYS = FIXTURES / "pki" / "keys"


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
    lock_fields: tuple[str, ...] | None = None,
    lock_all: bool = False,
) -> Path:
    """Sign ``src`` with the test PKI key ``label`` (PAdES B-B, or B-T with the test TSA);
    ``lock_fields`` adds a FieldMDP lock on those fields (Include), ``lock_all``
    one on every field (All)."""
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
    lock = (
        fields.FieldMDPSpec(fields.FieldMDPAction.ALL)
        if lock_all
        else fields.FieldMDPSpec(fields.FieldMDPAction.INCLUDE, list(lock_fields))
        if lock_fields
        else None
    )
    field_spec = fields.SigFieldSpec(field, field_mdp_spec=lock) if lock else None
    stamper = timestamps.HTTPTimeStamper(TSA_URL) if timestamp else None
    with src.open("rb") as fh:
        writer = IncrementalPdfFileWriter(fh, strict=False)
        out = signers.PdfSigner(
            meta, signer=signer, timestamper=stamper, new_field_spec=field_spec
        ).sign_pdf(writer)
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
    """An incremental writer that changes only what the helper asks: pyHanko's
    writer stamps /Info's ModDate to the second, so whether an update also
    counted as "document information updated" hung on the clock."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(src.read_bytes()), strict=False)
    writer._update_meta = lambda: None
    return writer


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
    info = cms.ContentInfo.load(der)  # past the zero padding (the CMS may end with 0x00)
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


def sign_with_files(
    src: Path, dst: Path, key: Path, cert: Path, ca: Path, *, pss: bool = False
) -> Path:
    """PAdES B-B with a key and certificate from files (RSA-PSS when ``pss``; the
    digest pyHanko pairs with the key: SHA-512 for Ed25519, SHAKE256 for Ed448)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    signer = signers.SimpleSigner.load(
        str(key), str(cert), ca_chain_files=(str(ca),), prefer_pss=pss
    )
    assert signer is not None
    algorithm = signer.signing_cert.public_key.algorithm
    md = {"ed25519": "sha512", "ed448": "shake256"}.get(algorithm, "sha256")
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1", md_algorithm=md, subfilter=fields.SigSeedSubFilter.PADES
    )
    with src.open("rb") as fh:
        out = signers.PdfSigner(meta, signer=signer).sign_pdf(
            IncrementalPdfFileWriter(fh, strict=False)
        )
        dst.write_bytes(out.getvalue())
    return dst


def add_dss_as_of(src: Path, dst: Path, label: str, when: str) -> Path:
    """A DSS with the chain, the OCSP response and the CRLs the test PKI would have
    given at ``when`` (ISO 8601, UTC), made by certomancer's API (no network)."""
    from datetime import datetime

    from asn1crypto import algos, ocsp
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    from support.infra import _pki_arch

    moment = datetime.fromisoformat(when)
    arch = _pki_arch()
    spec = arch.get_cert_spec(label)
    issuer = arch.get_cert("interm-ca")
    cert_id = ocsp.CertId(
        {
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "issuer_name_hash": arch.entities.get_name_hash(spec.issuer, "sha256"),
            "issuer_key_hash": issuer.public_key.sha256,
            "serial_number": spec.serial,
        }
    )
    responder = arch.service_registry.summon_responder(label="interm-ca", at_time=moment)
    answer = responder.assemble_simple_ocsp_responses(
        responses=[responder.format_single_ocsp_response(cid=cert_id, issuer_cert=issuer)]
    )
    crls = [
        arch.service_registry.get_crl(repo_label=repo, at_time=moment)
        for repo in ("interm-ca", "root-ca")
    ]
    certs = [arch.get_cert(c) for c in (label, "interm-ca", "ocsp-interm", "root-ca")]
    data = src.read_bytes()
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    contents = reader.embedded_signatures[0].pkcs7_content
    out = io.BytesIO(data)
    DocumentSecurityStore.add_dss(out, contents, certs=certs, ocsps=[answer], crls=crls)
    dst.write_bytes(out.getvalue())
    return dst


def _text_appearance(w: Any, value: str) -> Any:
    from pyhanko.pdf_utils import generic

    escaped = value.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return w.add_object(
        generic.StreamObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/XObject"),
                generic.NameObject("/Subtype"): generic.NameObject("/Form"),
                generic.NameObject("/BBox"): generic.ArrayObject(
                    [generic.NumberObject(v) for v in (0, 0, 200, 20)]
                ),
                generic.NameObject("/Resources"): generic.DictionaryObject(
                    {
                        generic.NameObject("/Font"): generic.DictionaryObject(
                            {
                                generic.NameObject("/Helv"): generic.DictionaryObject(
                                    {
                                        generic.NameObject("/Type"): generic.NameObject("/Font"),
                                        generic.NameObject("/Subtype"): generic.NameObject(
                                            "/Type1"
                                        ),
                                        generic.NameObject("/BaseFont"): generic.NameObject(
                                            "/Helvetica"
                                        ),
                                    }
                                )
                            }
                        )
                    }
                ),
            },
            stream_data=f"/Tx BMC BT /Helv 10 Tf 2 6 Td ({escaped}) Tj ET EMC".encode(),
        )
    )


def add_text_fields(src: Path, dst: Path, names: tuple[str, ...]) -> Path:
    """A form: empty text fields (field and widget in one dictionary) on page 1,
    as a form designer saves them, before anyone signs."""
    from pyhanko.pdf_utils import generic

    w = _writer(src)
    page_ref = w.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    created = []
    for n, name in enumerate(names):
        created.append(
            w.add_object(
                generic.DictionaryObject(
                    {
                        generic.NameObject("/Type"): generic.NameObject("/Annot"),
                        generic.NameObject("/Subtype"): generic.NameObject("/Widget"),
                        generic.NameObject("/FT"): generic.NameObject("/Tx"),
                        generic.NameObject("/T"): generic.TextStringObject(name),
                        generic.NameObject("/F"): generic.NumberObject(4),
                        generic.NameObject("/DA"): generic.TextStringObject("/Helv 10 Tf 0 g"),
                        generic.NameObject("/Rect"): generic.ArrayObject(
                            [
                                generic.NumberObject(v)
                                for v in (300, 100 + 30 * n, 500, 120 + 30 * n)
                            ]
                        ),
                        generic.NameObject("/P"): page_ref,
                        generic.NameObject("/AP"): generic.DictionaryObject(
                            {generic.NameObject("/N"): _text_appearance(w, "")}
                        ),
                    }
                )
            )
        )
    annots = page.get("/Annots")
    if annots is None:
        page[generic.NameObject("/Annots")] = generic.ArrayObject(created)
    else:
        annots.get_object().extend(created)
    w.update_container(page)
    form = generic.DictionaryObject(
        {
            generic.NameObject("/Fields"): generic.ArrayObject(created),
            generic.NameObject("/DA"): generic.TextStringObject("/Helv 0 Tf 0 g"),
        }
    )
    w.root[generic.NameObject("/AcroForm")] = w.add_object(form)
    w.update_root()
    return _finish(w, dst)


def fill_field(src: Path, dst: Path, name: str, value: str) -> Path:
    """Incremental update filling a text field: a new value and a new appearance stream."""
    from pyhanko.pdf_utils import generic

    w = _writer(src)
    for ref in w.root["/AcroForm"]["/Fields"]:
        field = ref.get_object()
        if field.get("/T") == name:
            field[generic.NameObject("/V")] = generic.TextStringObject(value)
            field[generic.NameObject("/AP")] = generic.DictionaryObject(
                {generic.NameObject("/N"): _text_appearance(w, value)}
            )
            w.update_container(field)
            return _finish(w, dst)
    raise KeyError(name)


def add_document_timestamp(src: Path, dst: Path, field: str | None = None) -> Path:
    """A document time-stamp from the test TSA (pyHanko's PdfTimeStamper)."""
    from pyhanko.sign import signers, timestamps

    w = _writer(src)
    stamper = signers.PdfTimeStamper(timestamps.HTTPTimeStamper(TSA_URL), field_name=field)
    out = stamper.timestamp_pdf(w, md_algorithm="sha256")
    dst.write_bytes(out.getvalue())
    return dst


def _der_only(padded: bytes) -> bytes:
    """The DER value at the start of a zero-padded /Contents (by its own length)."""
    first = padded[1]
    if first < 0x80:
        return padded[: 2 + first]
    count = first & 0x7F
    length = int.from_bytes(padded[2 : 2 + count], "big")
    return padded[: 2 + count + length]


def _cms_location(data: bytes, which: int = -1) -> tuple[int, int, Any]:
    from asn1crypto import cms

    match = list(re.finditer(rb"/Contents\s*<([0-9a-fA-F]+)>", data))[which]
    der = _der_only(bytes.fromhex(match.group(1).decode()))
    return match.start(1), match.end(1), cms.ContentInfo.load(der)


def _put_cms(data: bytearray, start: int, end: int, info: Any) -> None:
    new = info.dump(force=True).hex().encode()
    assert len(new) <= end - start
    data[start:end] = new + b"0" * (end - start - len(new))


def copy_signature_timestamp(source: Path, target: Path, dst: Path) -> Path:
    """``target``'s signature with the signature time-stamp of ``source``'s
    (both B-T): a time-stamp over another signature value."""
    _, _, donor = _cms_location(source.read_bytes())
    token = next(
        a["values"][0]
        for a in donor["content"]["signer_infos"][0]["unsigned_attrs"]
        if a["type"].native == "signature_time_stamp_token"
    )
    return _with_signature_timestamp(target, dst, lambda _info: token)


def timestamp_that_is_a_signature(source: Path, dst: Path) -> Path:
    """``source``'s (B-T) signature whose signature time-stamp token is an
    ordinary signature (a SignedData over data, not over a TSTInfo): the
    signature itself."""
    from asn1crypto import cms

    return _with_signature_timestamp(source, dst, lambda info: cms.ContentInfo.load(info.dump()))


def _with_signature_timestamp(target: Path, dst: Path, token: Any) -> Path:
    """``target``'s (last) signature with ``token(its ContentInfo)`` as its one
    signature time-stamp token."""
    from asn1crypto import cms

    data = bytearray(target.read_bytes())
    start, end, info = _cms_location(bytes(data))
    value = token(info)
    info["content"]["signer_infos"][0]["unsigned_attrs"] = cms.CMSAttributes(
        [cms.CMSAttribute({"type": "signature_time_stamp_token", "values": [value]})]
    )
    _put_cms(data, start, end, info)
    dst.write_bytes(bytes(data))
    return dst


def damage_signature_dictionary(source: Path, dst: Path, how: str) -> Path:
    """``source`` with its (last) signature dictionary changed in place, at the
    same length: ``negative-range``, a /ByteRange whose second part starts
    before the file; ``posing-as-timestamp``, an ordinary signature whose
    /SubFilter says it is a document time-stamp."""
    data = source.read_bytes()
    if how == "negative-range":
        match = list(re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", data))[-1]
        width = match.end(3) - match.start(3)
        damaged = data[: match.start(3)] + b"-" + b"9" * (width - 1) + data[match.end(3) :]
    elif how == "posing-as-timestamp":
        old = b"/SubFilter /ETSI.CAdES.detached"
        new = b"/SubFilter /ETSI.RFC3161"
        assert data.count(old) == 1
        damaged = data.replace(old, new + b" " * (len(old) - len(new)))
    else:
        raise ValueError(how)
    assert len(damaged) == len(data)
    dst.write_bytes(damaged)
    return dst


def swap_document_timestamp(source: Path, target: Path, dst: Path) -> Path:
    """``target``'s (last) document time-stamp replaced by ``source``'s token, which
    was made over other bytes."""
    data = bytearray(target.read_bytes())
    start, end, _ = _cms_location(bytes(data))
    _, _, token = _cms_location(source.read_bytes())
    _put_cms(data, start, end, token)
    dst.write_bytes(bytes(data))
    return dst


def algorithm_pki(directory: Path, kind: str) -> tuple[Path, Path, Path]:
    """A CA (RSA-2048) and a leaf whose key is ``kind``: ed25519, ed448, rsa-pss,
    ec-p384, ec-p521. Returns (ca.pem, leaf.pem, leaf-key.pem)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("Algorithm Test CA"))
        .issuer_name(name("Algorithm Test CA"))
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
    keys: dict[str, Any] = {
        "ed25519": ed25519.Ed25519PrivateKey.generate,
        "ed448": ed448.Ed448PrivateKey.generate,
        "rsa-pss": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "ec-p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    }
    leaf_key = keys[kind]()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name(f"Algorithm Test Signer {kind}"))
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


def _signed_bytes(data: bytes, which: int) -> bytes:
    match = list(re.finditer(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", data))[which]
    a, b, c, d = (int(v) for v in match.groups())
    return data[a : a + b] + data[c : c + d]


def openssl_ts_verifies(path: Path, which: int, workdir: Path) -> bool:
    """openssl ts's judgement of a document time-stamp (the ``which``-th signature
    dictionary): imprint over the ByteRange bytes, TSA signature, chain to the
    test root: an independent referee."""
    from support.cmscheck import openssl_ts_verify

    data = path.read_bytes()
    _, _, token = _cms_location(data, which)
    root, interm = _test_chain(workdir)
    proc = openssl_ts_verify(token.dump(), _signed_bytes(data, which), root, interm, workdir)
    return proc.returncode == 0


def openssl_signature_timestamp_verifies(path: Path, workdir: Path) -> bool:
    """openssl ts's judgement of the last signature's signature time-stamp token:
    imprint over the signature value, TSA signature, chain to the test root."""
    from support.cmscheck import openssl_ts_verify, unsigned

    _, _, info = _cms_location(path.read_bytes())
    signer = info["content"]["signer_infos"][0]
    (token,) = unsigned(signer, "signature_time_stamp_token")
    root, interm = _test_chain(workdir)
    proc = openssl_ts_verify(token.dump(), signer["signature"].native, root, interm, workdir)
    return proc.returncode == 0


def _test_chain(workdir: Path) -> tuple[Path, Path]:
    """The test root and intermediate CA as PEM files in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    root, interm = workdir / "root.pem", workdir / "interm.pem"
    root.write_bytes(_pem(pki_certificate("root-ca")))
    interm.write_bytes(_pem(pki_certificate("interm-ca")))
    return root, interm


def _pem(der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


def openssl_cms_verifies(path: Path, workdir: Path) -> bool:
    """openssl's judgement of the last signature's maths (message digest and signature
    value over the ByteRange bytes, no chain): an independent referee. OpenSSL 3.0's
    CMS code cannot verify EdDSA ("invalid digest"), so for those the two checks
    are made with its primitives: dgst over the signed bytes, pkeyutl over the
    signed attributes."""
    import subprocess

    data = path.read_bytes()
    _, _, info = _cms_location(data)
    workdir.mkdir(parents=True, exist_ok=True)
    content = workdir / "content.bin"
    content.write_bytes(_signed_bytes(data, -1))
    (workdir / "sig.der").write_bytes(info.dump())
    signer = info["content"]["signer_infos"][0]
    mechanism = signer["signature_algorithm"]["algorithm"].native

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["openssl", *args], capture_output=True, check=False)

    if mechanism not in ("ed25519", "ed448"):
        return (
            run(
                "cms", "-verify", "-binary", "-inform", "DER", "-noverify",
                "-in", str(workdir / "sig.der"), "-content", str(content), "-out", "/dev/null",
            ).returncode
            == 0
        )  # fmt: skip
    digest = {"ed25519": ["-sha512"], "ed448": ["-shake256", "-xoflen", "64"]}[mechanism]
    computed = run("dgst", *digest, "-binary", str(content)).stdout
    claimed = next(
        a["values"][0].native
        for a in signer["signed_attrs"]
        if a["type"].native == "message_digest"
    )
    (workdir / "attrs.der").write_bytes(signer["signed_attrs"].untag().dump())
    (workdir / "value.bin").write_bytes(signer["signature"].native)
    cert = next(
        c.chosen
        for c in info["content"]["certificates"]
        if c.chosen.serial_number == signer["sid"].chosen["serial_number"].native
    )
    (workdir / "key.pem").write_bytes(
        b"-----BEGIN PUBLIC KEY-----\n"
        + _b64_lines(cert.public_key.dump())
        + b"-----END PUBLIC KEY-----\n"
    )
    verified = run(
        "pkeyutl", "-verify", "-pubin", "-inkey", str(workdir / "key.pem"), "-rawin",
        "-in", str(workdir / "attrs.der"), "-sigfile", str(workdir / "value.bin"),
    )  # fmt: skip
    return computed == claimed and verified.returncode == 0


def _b64_lines(der: bytes) -> bytes:
    import base64
    import textwrap

    return ("\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64)) + "\n").encode()


def signed_elsewhere_with_utf16_lang(dst: Path) -> Path:
    """A one-page document whose catalog's /Lang is a UTF-16 literal string,
    signed as some other producers sign (adbe.pkcs7.detached, into an existing
    form, the catalog left as it was): the first later update that rewrites
    the catalog stores /Lang again in PDFDocEncoding."""
    from asn1crypto import x509
    from pyhanko.keys import load_private_key_from_pemder
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from support.handmade_pdf import build, page_objects

    data = build(
        {
            **page_objects(catalog=b" /Lang (\xfe\xff\x00v\x00i) /AcroForm 6 0 R"),
            6: b"<< /Fields [] >>",
        }
    )
    signer = signers.SimpleSigner(
        signing_cert=x509.Certificate.load(pki_certificate("signer-rsa2048")),
        signing_key=load_private_key_from_pemder(KEYS / "signer-rsa2048.key.pem", passphrase=None),
        cert_registry=SimpleCertificateStore.from_certs(
            [x509.Certificate.load(pki_certificate("interm-ca"))]
        ),
    )
    meta = signers.PdfSignatureMetadata(
        field_name="Sig1", subfilter=fields.SigSeedSubFilter.ADOBE_PKCS7_DETACHED
    )
    out = io.BytesIO()
    signers.PdfSigner(meta, signer).sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)), output=out)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(out.getvalue())
    return dst
