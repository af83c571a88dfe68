"""Referees for signed XML: xmlsec1, signxml, openssl, and checks written here.

Nothing here calls signkit's own verifier except ``own_check``; the other
checks recompute what they need from the bytes with lxml, cryptography and
the referee tools.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from support.infra import pki_certificate

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
NS = {"ds": DS, "xades": XADES}
SIGNED_PROPERTIES_ID = f"--id-attr:Id {XADES}:SignedProperties"


def parse(path: Path) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.parse(str(path), parser)


def xmlsec_verify(
    path: Path, tmp: Path, *, id_attrs: tuple[str, ...] = (), signer: str | None = None
) -> subprocess.CompletedProcess[str]:
    """xmlsec1 --verify against the test root (the intermediate as untrusted)."""
    root = tmp / "xmlsec-root.der"
    interm = tmp / "xmlsec-interm.der"
    root.write_bytes(pki_certificate("root-ca"))
    interm.write_bytes(pki_certificate("interm-ca"))
    cmd = ["xmlsec1", "--verify", "--trusted-der", str(root), "--untrusted-der", str(interm)]
    for spec in id_attrs:
        name, _, node = spec.partition(" ")
        cmd += [name, node]
    cmd += ["--id-attr:Id", f"{XADES}:SignedProperties", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=path.parent)


def assert_xmlsec_ok(path: Path, tmp: Path, *, id_attrs: tuple[str, ...] = ()) -> None:
    proc = xmlsec_verify(path, tmp, id_attrs=id_attrs)
    assert proc.returncode == 0 and proc.stderr.startswith("OK"), proc.stderr


def signxml_verify(
    path: Path,
    cert_label: str,
    *,
    xades: bool,
    references: int,
    default_namespace: bool = False,
    validate_schema: bool = True,
) -> list[Any]:
    """signxml's verifier with the signer certificate given (signxml cannot build
    this test PKI's chain), every signature method allowed (PSS, ECDSA).

    ``default_namespace``: the Signature is in the default namespace (the
    Vietnamese layouts). lxml 6.1 canonicalises a subtree whose default
    namespace is declared above it with a spurious ``xmlns=""`` two levels
    down (tests/unit/test_xml_parse.py pins this), which breaks signxml's
    SignedInfo; signxml's own ``excise_empty_xmlns_declarations`` switch
    removes those. ``validate_schema=False``: the e-invoice SigningTime
    object, as seen in real invoices, is not valid against the XMLDSig schema.
    """
    from cryptography import x509
    from signxml import SignatureConfiguration, XMLVerifier
    from signxml.algorithms import SignatureMethod
    from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

    cert = x509.load_der_x509_certificate(pki_certificate(cert_label))
    methods = frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC"))
    data = path.read_bytes()
    if xades:
        config: Any = XAdESSignatureConfiguration(
            signature_methods=methods, expect_references=references
        )
        verifier: Any = XAdESVerifier()
    else:
        config = SignatureConfiguration(signature_methods=methods, expect_references=references)
        verifier = XMLVerifier()
    verifier.excise_empty_xmlns_declarations = default_namespace
    result = verifier.verify(
        data, x509_cert=cert, expect_config=config, validate_schema=validate_schema
    )
    return result if isinstance(result, list) else [result]


def signature_element(path: Path) -> Any:
    root = parse(path).getroot()
    if root.tag == f"{{{DS}}}Signature":
        return root
    sigs = root.findall(f".//{{{DS}}}Signature")
    assert len(sigs) == 1, f"{len(sigs)} signatures"
    return sigs[0]


def assert_signing_certificate_v2(path: Path, cert_label: str) -> None:
    """XAdES SigningCertificateV2: digest of the signer certificate, and
    IssuerSerialV2 naming its issuer and serial (recomputed here)."""
    from asn1crypto import cms, x509

    sig = signature_element(path)
    cert_der = pki_certificate(cert_label)
    cd = sig.find(".//xades:SigningCertificateV2/xades:Cert/xades:CertDigest", NS)
    assert cd is not None
    assert cd.find("ds:DigestMethod", NS).get("Algorithm").endswith("sha256")
    assert (
        base64.b64decode(cd.findtext("ds:DigestValue", namespaces=NS))
        == hashlib.sha256(cert_der).digest()
    )
    issuer_serial = cms.IssuerSerial.load(
        base64.b64decode(sig.findtext(".//xades:IssuerSerialV2", namespaces=NS))
    )
    cert = x509.Certificate.load(cert_der)
    assert issuer_serial["serial"].native == cert.serial_number
    assert issuer_serial["issuer"][0].chosen == cert.issuer


def canonical_signed_info(path: Path) -> bytes:
    """Inclusive C14N of SignedInfo as signxml computes it (for documents without
    xml:* attributes above the signature, that is the spec's value)."""
    sig = signature_element(path)
    standalone = etree.fromstring(etree.tostring(sig))
    si = standalone.find("ds:SignedInfo", NS)
    method = si.find("ds:CanonicalizationMethod", NS).get("Algorithm")
    return bytes(
        etree.tostring(si, method="c14n", exclusive="exc-c14n" in method, with_comments=False)
    )


def openssl_verify_pss(path: Path, tmp: Path, cert_label: str) -> None:
    """RSA-PSS (xmlsec1 1.2.37 has none): openssl checks the SignatureValue over the
    canonical SignedInfo with the certificate's key, salt = hash length."""
    sig = signature_element(path)
    assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm") == (
        "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"
    )
    (tmp / "si.bin").write_bytes(canonical_signed_info(path))
    (tmp / "sv.bin").write_bytes(base64.b64decode(sig.findtext("ds:SignatureValue", namespaces=NS)))
    (tmp / "cert.der").write_bytes(pki_certificate(cert_label))
    subprocess.run(
        [
            "openssl",
            "x509",
            "-inform",
            "DER",
            "-in",
            str(tmp / "cert.der"),
            "-pubkey",
            "-noout",
            "-out",
            str(tmp / "pub.pem"),
        ],
        check=True,
    )
    proc = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(tmp / "pub.pem"),
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
            "-signature",
            str(tmp / "sv.bin"),
            str(tmp / "si.bin"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verified OK" in proc.stdout, proc.stdout + proc.stderr


@dataclass(frozen=True)
class OwnCheck:
    """What signkit's own core established (not a referee: a second opinion)."""

    references: int
    xades: bool


def own_check(path: Path, *, id_attributes: tuple[str, ...] = ("Id",)) -> OwnCheck:
    """signkit's core validation of the document's one signature; fails unless valid."""
    from signkit.formats.xml import xades
    from signkit.formats.xml.core import check_signature, signatures_of
    from signkit.formats.xml.parse import parse

    doc = parse(path.read_bytes(), str(path))
    (signature,) = signatures_of(doc)
    result = check_signature(doc, signature, base=path.parent, id_attributes=id_attributes)
    assert result.valid, [(r.uri, r.problem) for r in result.references]
    return OwnCheck(len(result.references), xades.signed_properties(signature) is not None)


def without(data: bytes, start: bytes, end: bytes) -> tuple[bytes, bytes]:
    """``data`` with the one span from ``start`` to ``end`` (inclusive) cut out, and that span."""
    i = data.index(start)
    j = data.index(end, i) + len(end)
    assert data.count(start) == 1
    return data[:i] + data[j:], data[i:j]
