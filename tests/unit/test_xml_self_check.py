"""The signing self-check is a verifier's check: ``finish`` re-parses the written
bytes and recomputes every Reference digest, and resume never takes an output
whose signature does not verify for done.

The token is replaced here by the test PKI's private key in a PEM file (what
the token computes is an RSA PKCS#1 v1.5 signature over the canonical
SignedInfo); everything else is signkit's signing code.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree

from signkit.errors import DocumentError
from signkit.formats.plugin import OutputState
from signkit.formats.xml import batch, sign
from support.infra import FIXTURES, pki_certificate
from support.xmldocs import signing_item

KEYS = FIXTURES / "pki" / "keys"
DOCUMENT = (
    "<?xml version='1.0' encoding='UTF-8'?>\n<hoSo><ghiChu>trước</ghiChu>"
    "<noiDung Id='nd'><![CDATA[Hợp đồng <số 7> & ê]]></noiDung> sau</hoSo>\n"
).encode()


def _key(label: str) -> rsa.RSAPrivateKey:
    key = load_pem_private_key((KEYS / f"{label}.key.pem").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _token(data: bytes, label: str = "signer-rsa2048") -> bytes:
    return _key(label).sign(data, padding.PKCS1v15(), hashes.SHA256())


def _prepare(tmp_path: Path, name: str, **options: str) -> batch.Prepared:
    src = tmp_path / "in.xml"
    src.write_bytes(DOCUMENT)
    item = signing_item(src, tmp_path / name, chain=(pki_certificate("interm-ca"),), **options)
    return sign.prepare_bytes(item, DOCUMENT)


def test_a_signature_that_verifies_is_finished(tmp_path: Path) -> None:
    prepared = _prepare(tmp_path, "good.xml", reference="nd")
    finished = sign.worker_finish(prepared, _token(prepared.to_sign))
    assert Path(finished.temp).read_bytes().count(b"<ds:Signature ") == 1


def test_finish_recomputes_every_digest_from_the_written_bytes(tmp_path: Path) -> None:
    """Regression: the self-check verified only the SignatureValue, so an output
    whose signed element does not hash to its DigestValue (the CDATA bug) was
    published with exit 0. Here the signed element's bytes differ from what was
    digested, and the SignatureValue over SignedInfo is genuine."""
    prepared = _prepare(tmp_path, "bad.xml", reference="nd")
    assert "Hợp đồng".encode() in prepared.head
    broken = batch.Prepared(**{**vars(prepared), "head": prepared.head.replace(b"&", b"+")})
    with pytest.raises(DocumentError) as err:
        sign.worker_finish(broken, _token(prepared.to_sign))
    assert "the signed output does not verify (reference #nd: does not match its digest)" in (
        str(err.value)
    )


def test_finish_refuses_a_value_the_signer_certificate_does_not_verify(tmp_path: Path) -> None:
    """The error names the document (it used to name the temp file, which is
    removed and means nothing to the clerk)."""
    prepared = _prepare(tmp_path, "other-key.xml")
    with pytest.raises(DocumentError, match="does not verify with the signer certificate") as err:
        sign.worker_finish(prepared, _token(prepared.to_sign, "signer-rsa3072"))
    assert err.value.subject == str(tmp_path / "in.xml")


def _resume(tmp_path: Path, output: Path) -> OutputState:
    return sign.output_state(
        output,
        tmp_path / "in.xml",
        hashlib.sha256(pki_certificate("signer-rsa2048")).hexdigest(),
        form="enveloped",
        in_place=False,
    )


def test_resume_never_skips_an_output_whose_digest_is_wrong(tmp_path: Path) -> None:
    """Regression: an output signed over the wrong canonical form (CDATA 'ê' taken
    as the text '&#234;', as the old signer did) with a genuine SignatureValue
    was skipped as 'already signed'. Only a signature that verifies is done."""
    prepared = _prepare(tmp_path, "resume.xml", reference="nd")
    finished = sign.worker_finish(prepared, _token(prepared.to_sign))
    good = Path(finished.temp).read_bytes()
    output = tmp_path / "resume.xml"
    output.write_bytes(good)
    assert _resume(tmp_path, output) is OutputState.DONE
    # a digest over another canonical form, as the old signer made (its copy of
    # the element had '&#234;' where the CDATA holds 'ê')
    old_c14n = '<noiDung Id="nd">Hợp đồng &lt;số 7&gt; &amp; &amp;#234;</noiDung>'
    wrong = base64.b64encode(hashlib.sha256(old_c14n.encode()).digest()).decode()
    root = etree.fromstring(good)
    ns = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
    (digest,) = root.xpath("//ds:Reference[@URI='#nd']/ds:DigestValue", namespaces=ns)
    digest.text = wrong
    # a genuine SignatureValue over the SignedInfo that carries the wrong digest
    # (lxml's own C14N of SignedInfo: no default namespace or xml:* above it here)
    (signed_info,) = root.xpath("//ds:SignedInfo", namespaces=ns)
    (value,) = root.xpath("//ds:SignatureValue", namespaces=ns)
    value.text = base64.b64encode(_token(etree.tostring(signed_info, method="c14n"))).decode()
    bad = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    output.write_bytes(bad)
    check = sign.check_output(
        bad,
        str(output),
        base=tmp_path,
        id_attributes=("Id",),
        signer_sha256=hashlib.sha256(pki_certificate("signer-rsa2048")).hexdigest(),
    )
    assert check.problem == "reference #nd: does not match its digest", check
    assert _resume(tmp_path, output) is OutputState.FOREIGN
    # and an output signed over an earlier input is stale
    output.write_bytes(good)
    (tmp_path / "in.xml").write_bytes(DOCUMENT.replace(b"sau", "sau nữa".encode()))
    assert _resume(tmp_path, output) is OutputState.STALE
