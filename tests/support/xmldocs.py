"""XML documents for verification tests: signed by xmlsec1 (the referee) or signxml with
the test PKI's keys, and hand-made signature-wrapping variants."""

from __future__ import annotations

import base64
import copy
import re
import subprocess
from pathlib import Path

from lxml import etree

from signkit.formats.xml import batch
from signkit.formats.xml.options import XmlDocOptions
from support.infra import FIXTURES, pki_certificate

KEYS = FIXTURES / "pki" / "keys"
DS = "http://www.w3.org/2000/09/xmldsig#"

INVOICE = """<?xml version="1.0" encoding="UTF-8"?>
<HDon><DLHDon Id="data"><TTChung><SHDon>0000123</SHDon></TTChung><NDHDon><Ten>Công ty TNHH \
Nam Định</Ten><TgTien>1000000</TgTien></NDHDon></DLHDon><DSCKS><NBan>{signature}</NBan></DSCKS>\
</HDon>
"""

SIGNATURE = (
    '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#" Id="seller"><SignedInfo>'
    '<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    '<SignatureMethod Algorithm="{signature_uri}"/>'
    '<Reference URI="#data"><Transforms>'
    '<Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/></Transforms>'
    '<DigestMethod Algorithm="{digest_uri}"/><DigestValue/></Reference></SignedInfo>'
    "<SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>"
)
SIGNATURE_URIS = {
    "sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
}
DIGEST_URIS = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha1": "http://www.w3.org/2000/09/xmldsig#sha1",
}


def signing_item(
    source: Path, output: Path, *, chain: tuple[bytes, ...] = (), **options: str
) -> batch.PrepareItem:
    """The item a ``sign xml`` batch hands its worker for ``source``, signed by
    the test PKI's RSA-2048 signer (what the token signs is up to the test)."""
    config = batch.XmlBatchConfig(
        signer_der=pki_certificate("signer-rsa2048"),
        chain_der=chain,
        key_type="RSA",
        key_size=2048,
        digest_algorithm="sha256",
        scheme="pkcs1v15",
        tsa=None,
    )
    return batch.PrepareItem(
        index=0,
        input=str(source),
        output=str(output),
        temp=str(output.with_name(f".tmp-{output.name}")),
        options=XmlDocOptions(**options),  # type: ignore[arg-type]
        config=config,
    )


def pem(label: str, directory: Path) -> Path:
    """A test PKI certificate as a PEM file."""
    path = directory / f"{label}.pem"
    body = base64.encodebytes(pki_certificate(label)).decode()
    path.write_text(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
    return path


def xmlsec_sign(
    directory: Path,
    label: str,
    *,
    digest: str = "sha256",
    chain: bool = True,
    prefixed: bool = False,
    exclusive: bool = False,
) -> Path:
    """An e-invoice-style document signed by xmlsec1 (the referee's own signer); the
    signature in the default namespace (as Vietnamese e-invoices do) or as ds:."""
    directory.mkdir(parents=True, exist_ok=True)
    sig = SIGNATURE.replace("{signature_uri}", SIGNATURE_URIS[digest])
    sig = sig.replace("{digest_uri}", DIGEST_URIS[digest])
    if exclusive:
        sig = sig.replace(
            '<Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>',
            '<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
        )
    if prefixed:
        sig = re.sub(r"<(/?)([A-Z][A-Za-z0-9]*)", r"<\1ds:\2", sig)
        sig = sig.replace('xmlns="http://www.w3.org', 'xmlns:ds="http://www.w3.org')
    template = directory / f"{label}-template.xml"
    template.write_text(INVOICE.format(signature=sig), encoding="utf-8")
    out = directory / f"{label}-{digest}.xml"
    keys = [str(KEYS / f"{label}.key.pem"), str(pem(label, directory))]
    if chain:
        keys.append(str(pem("interm-ca", directory)))
    proc = subprocess.run(
        ["xmlsec1", "--sign", "--privkey-pem", ",".join(keys), "--id-attr:Id", "DLHDon",
         "--output", str(out), str(template)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def xmlsec_verify(path: Path, directory: Path) -> bool:
    """xmlsec1's own verdict, trusting only the test root."""
    proc = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", str(pem("root-ca", directory)),
         "--untrusted-pem", str(pem("interm-ca", directory)), "--id-attr:Id", "DLHDon",
         str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return proc.returncode == 0


def _load(path: Path) -> etree._Element:
    return etree.fromstring(path.read_bytes())


def _save(root: etree._Element, path: Path) -> Path:
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path


def _evil(original: etree._Element, ident: str | None) -> etree._Element:
    evil = copy.deepcopy(original)
    evil.find("NDHDon/TgTien").text = "999000000"
    if ident is None:
        del evil.attrib["Id"]
    else:
        evil.set("Id", ident)
    return evil


def change_amount(src: Path, dst: Path) -> Path:
    """The signed element's content altered."""
    root = _load(src)
    root.find("DLHDon/NDHDon/TgTien").text = "999000000"
    return _save(root, dst)


def duplicate_id(src: Path, dst: Path) -> Path:
    """A second element with the signed Id, placed first."""
    root = _load(src)
    original = root.find("DLHDon")
    root.insert(0, _evil(original, "data"))
    return _save(root, dst)


def hide_in_object(src: Path, dst: Path) -> Path:
    """The signed element moved into a ds:Object; a forged one takes its place."""
    root = _load(src)
    original = root.find("DLHDon")
    index = list(root).index(original)
    root.remove(original)
    root.insert(index, _evil(original, None))
    signature = root.find(f".//{{{DS}}}Signature")
    obj = etree.SubElement(signature, f"{{{DS}}}Object")
    obj.append(original)
    return _save(root, dst)


def move_to_wrapper(src: Path, dst: Path) -> Path:
    """The signed element moved under an extension element; a forged one takes its place."""
    root = _load(src)
    original = root.find("DLHDon")
    index = list(root).index(original)
    root.remove(original)
    root.insert(index, _evil(original, None))
    wrapper = etree.SubElement(root, "PLuc")
    wrapper.append(original)
    return _save(root, dst)


def with_doctype(src: Path, dst: Path) -> Path:
    """An internal DTD with an entity (the start of every XML bomb)."""
    body = src.read_text(encoding="utf-8").split("\n", 1)[1]
    dst.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE HDon [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>\n' + body,
        encoding="utf-8",
    )
    return dst


def xades_sign(directory: Path, label: str, *, cert_label: str | None = None) -> Path:
    """XAdES B-B by signxml; with ``cert_label`` the signed SigningCertificateV2 names another
    certificate while KeyInfo carries the real signer's (whose key made the signature)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from signxml.xades import XAdESSigner

    directory.mkdir(parents=True, exist_ok=True)
    named = cert_label or label
    root = etree.fromstring(INVOICE.format(signature="").encode())
    key = load_pem_private_key((KEYS / f"{label}.key.pem").read_bytes(), password=None)
    certs = [pem(named, directory).read_text(), pem("interm-ca", directory).read_text()]
    key_info = None
    if cert_label is not None:
        key_info = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
        data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
        cert = etree.SubElement(data, f"{{{DS}}}X509Certificate")
        cert.text = base64.b64encode(pki_certificate(label)).decode()
        certs = certs[:1]
    signed = XAdESSigner().sign(root, key=key, cert=certs, key_info=key_info)
    out = directory / f"xades-{label}{'-as-' + cert_label if cert_label else ''}.xml"
    return _save(signed, out)


def add_signature_timestamp(src: Path, dst: Path, *, over: bytes | None = None) -> Path:
    """XAdES B-T: a SignatureTimeStamp from the test TSA over the canonical SignatureValue
    (or over ``over``, for a token that covers something else)."""
    from signkit.pki.timestamps import TsaSpec, request_timestamp
    from support.infra import TSA_URL

    xades = "http://uri.etsi.org/01903/v1.3.2#"
    c14n = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    root = _load(src)
    signature = root.find(f".//{{{DS}}}Signature")
    value = signature.find(f"{{{DS}}}SignatureValue")
    covered = etree.tostring(etree.fromstring(etree.tostring(value)), method="c14n")
    token = request_timestamp(TsaSpec(url=TSA_URL), covered if over is None else over)
    props = signature.find(f".//{{{xades}}}QualifyingProperties")
    unsigned = etree.SubElement(props, f"{{{xades}}}UnsignedProperties")
    sig_props = etree.SubElement(unsigned, f"{{{xades}}}UnsignedSignatureProperties")
    stamp = etree.SubElement(sig_props, f"{{{xades}}}SignatureTimeStamp")
    etree.SubElement(stamp, f"{{{DS}}}CanonicalizationMethod", Algorithm=c14n)
    encoded = etree.SubElement(stamp, f"{{{xades}}}EncapsulatedTimeStamp")
    encoded.text = base64.b64encode(token.dump()).decode()
    return _save(root, dst)


def add_revocation_values(src: Path, dst: Path) -> Path:
    """XAdES B-LT data: the intermediate in CertificateValues and the test PKI's
    current CRLs in RevocationValues (unsigned properties: the signature holds)."""
    import urllib.request

    from support.infra import PKI_ARCH, PKI_PORT

    xades = "http://uri.etsi.org/01903/v1.3.2#"
    root = _load(src)
    props = root.find(f".//{{{xades}}}QualifyingProperties")
    unsigned = props.find(f"{{{xades}}}UnsignedProperties")
    if unsigned is None:
        unsigned = etree.SubElement(props, f"{{{xades}}}UnsignedProperties")
    sig_props = unsigned.find(f"{{{xades}}}UnsignedSignatureProperties")
    if sig_props is None:
        sig_props = etree.SubElement(unsigned, f"{{{xades}}}UnsignedSignatureProperties")
    values = etree.SubElement(sig_props, f"{{{xades}}}CertificateValues")
    cert = etree.SubElement(values, f"{{{xades}}}EncapsulatedX509Certificate")
    cert.text = base64.b64encode(pki_certificate("interm-ca")).decode()
    revocation = etree.SubElement(sig_props, f"{{{xades}}}RevocationValues")
    crls = etree.SubElement(revocation, f"{{{xades}}}CRLValues")
    for ca in ("interm-ca", "root-ca"):
        url = f"http://127.0.0.1:{PKI_PORT}/{PKI_ARCH}/crls/{ca}/latest.crl"
        with urllib.request.urlopen(url, timeout=10) as resp:
            etree.SubElement(crls, f"{{{xades}}}EncapsulatedCRLValue").text = base64.b64encode(
                resp.read()
            ).decode()
    return _save(root, dst)
