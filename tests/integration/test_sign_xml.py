"""`signkit sign xml` end to end: real SoftHSM, live PKI, xmlsec1/signxml/openssl referees."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from lxml import etree

from support.infra import FIXTURES, TSA_URL, PkiServices, SoftHsm, pki_certificate
from support.xmlcheck import (
    NS,
    assert_signing_certificate_v2,
    assert_xmlsec_ok,
    openssl_verify_pss,
    own_check,
    parse,
    signature_element,
    signxml_verify,
    without,
    xmlsec_verify,
)

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

XML = FIXTURES / "xml"
HOSTILE = XML / "hostile"
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
VN_KEY = ["--token-label", "signkit-test-a", "--key-label", "key-vn"]
EC_KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-ec256"]
DLHDON_ID = "--id-attr:Id DLHDon"
HTKK_ID = "--id-attr:id http://kekhaithue.gdt.gov.vn/TKhaiThue:HSoKhaiThue"


@pytest.fixture
def skx(signkit, softhsm: SoftHsm, pki: PkiServices, tmp_path: Path, trust: Path):  # type: ignore[no-untyped-def]
    """`signkit sign xml` with the module, PIN (environment), trust anchor and audit log set."""

    def run(*args: str, env: dict[str, str] | None = None, **kw):  # type: ignore[no-untyped-def]
        full_env = {
            "SIGNKIT_MODULE": softhsm.module,
            "SIGNKIT_PIN": softhsm.user_pin,
            "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
            **(env or {}),
        }
        return signkit(
            "sign",
            "xml",
            *args,
            "--trust",
            str(trust),
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            env=full_env,
            **kw,
        )

    return run


def copy(dst: Path, *names: str) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        shutil.copy(XML / name, dst / Path(name).name)
        out.append(dst / Path(name).name)
    return out


def cut_signature(out: Path, prefix: str = "ds:") -> tuple[bytes, bytes]:
    data = out.read_bytes()
    return without(data, f"<{prefix}Signature ".encode(), f"</{prefix}Signature>".encode())


# ---------------------------------------------------------------- plain XMLDSig


def test_batch_signs_every_file_and_keeps_every_other_byte(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inputs = copy(tmp_path / "in", "generic.xml", "einvoice.xml", "tax-declaration.xml")
    report = tmp_path / "report.json"
    proc = skx(str(tmp_path / "in"), *KEY, "--json", "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads(report.read_text())
    assert data["command"] == "sign xml" and data["totals"]["signed"] == 3
    assert data["signer"]["chain_anchor"] == "configured"
    for src in inputs:
        out = src.with_name(src.stem + "_signed.xml")
        doc = next(d for d in data["documents"] if d["input"] == str(src))
        assert doc["status"] == "signed" and doc["output"] == str(out)
        assert doc["sha256_before"] == hashlib.sha256(src.read_bytes()).hexdigest()
        assert doc["sha256_after"] == hashlib.sha256(out.read_bytes()).hexdigest()
        # byte for byte: the output is the input with one Signature inserted
        rest, _sig = cut_signature(out)
        assert rest == src.read_bytes()
        assert_xmlsec_ok(out, tmp_path)
        signxml_verify(out, "signer-rsa2048", xades=False, references=1)
        assert own_check(out).references == 1
    # the generic document: the signature went just before the root's end tag
    generic_out = (tmp_path / "in" / "generic_signed.xml").read_bytes()
    original = (XML / "generic.xml").read_bytes()
    end = original.index(b"</cv:congVan>")
    assert generic_out.startswith(original[:end] + b"<ds:Signature ")
    assert generic_out.endswith(b"</ds:Signature>" + original[end:])
    # audit: intent and result records, no PIN
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["type"] == "run-start" and records[0]["command"] == "sign xml"
    assert sum(1 for r in records if r.get("status") == "signed" and r["format"] == "xml") == 3
    assert "739148" not in "".join(lines)
    # resume: nothing is signed twice; --resign signs again
    again = skx(str(tmp_path / "in"), *KEY, "--json")
    assert json.loads(again.stdout)["totals"]["skipped"] == 3
    first = (tmp_path / "in" / "generic_signed.xml").read_bytes()
    resigned = skx(str(tmp_path / "in" / "generic.xml"), *KEY, "--resign", "--json")
    assert json.loads(resigned.stdout)["totals"]["signed"] == 1
    assert (tmp_path / "in" / "generic_signed.xml").read_bytes() != first
    assert not list((tmp_path / "in").glob(".signkit-tmp-*"))


def test_reference_by_id_exclusive_c14n_sha512(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "generic.xml")
    out = tmp_path / "out.xml"
    proc = skx(
        str(src),
        *KEY,
        "-o",
        str(out),
        "--reference",
        "trich-yeu",
        "--c14n",
        "exclusive",
        "--digest",
        "sha512",
        "--signature-id",
        "chu-ky-1",
    )
    assert proc.returncode == 0, proc.stderr
    sig = signature_element(out)
    assert sig.get("Id") == "chu-ky-1"
    ref = sig.find("ds:SignedInfo/ds:Reference", NS)
    assert ref.get("URI") == "#trich-yeu"
    assert sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("rsa-sha512")
    assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == (
        "http://www.w3.org/2001/10/xml-exc-c14n#"
    )
    assert_xmlsec_ok(out, tmp_path, id_attrs=("--id-attr:Id urn:signkit:test:congvan:trichYeu",))
    signxml_verify(out, "signer-rsa2048", xades=False, references=1)
    rest, _ = cut_signature(out)
    assert rest == src.read_bytes()


def test_signature_parent_xpath(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "einvoice.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *KEY, "-o", str(out), "--signature-parent", "/HDon/DSCKS/NMua")
    assert proc.returncode == 0, proc.stderr
    sig = signature_element(out)
    assert sig.getparent().tag == "NMua"
    # an empty-element tag <NMua/> became <NMua>…</NMua>: only that changed
    data = out.read_bytes()
    i = data.rindex(b"<NMua>")  # the buyer in NDHDon comes first
    j = data.rindex(b"</NMua>") + len(b"</NMua>")
    assert data[:i] + b"<NMua/>" + data[j:] == src.read_bytes()
    assert_xmlsec_ok(out, tmp_path)
    signxml_verify(out, "signer-rsa2048", xades=False, references=1)


def test_signature_parent_xpath_in_a_default_namespace(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """HTKK declarations live in a default namespace: XPath 1.0 has none, so
    ``d:`` names it (and the root's own prefixes work as declared)."""
    (src,) = copy(tmp_path, "tax-declaration.xml")
    out = tmp_path / "out.xml"
    parent = "/d:HSoThueDTu/d:CKyDTu"
    proc = skx(str(src), *KEY, "-o", str(out), "--signature-parent", parent)
    assert proc.returncode == 0, proc.stderr
    sig = signature_element(out)
    assert sig.getparent().tag == "{http://kekhaithue.gdt.gov.vn/TKhaiThue}CKyDTu"
    assert_xmlsec_ok(out, tmp_path)
    # an undeclared prefix is a clear one-line error, nothing written
    bad = skx(str(src), *KEY, "-o", str(tmp_path / "bad.xml"), "--signature-parent", "/x:A")
    assert bad.returncode == 1, bad.stderr
    assert "cannot evaluate --signature-parent /x:A" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad.xml").exists()


def test_ecdsa_signature_is_raw_r_s(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "generic.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *EC_KEY, "-o", str(out), "--level", "B-B")
    assert proc.returncode == 0, proc.stderr
    sig = signature_element(out)
    assert (
        sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("ecdsa-sha256")
    )
    value = base64.b64decode(sig.findtext("ds:SignatureValue", namespaces=NS))
    assert len(value) == 64  # r||s, 2 x 32 bytes (a DER SEQUENCE would be 70-72)
    assert_xmlsec_ok(out, tmp_path)
    signxml_verify(out, "signer-ec256", xades=True, references=2)
    assert_signing_certificate_v2(out, "signer-ec256")


def test_rsa_pss_checked_by_signxml_and_openssl(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "generic.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *KEY, "-o", str(out), "--pss", "--level", "B-B")
    assert proc.returncode == 0, proc.stderr
    signxml_verify(out, "signer-rsa2048", xades=True, references=2)
    openssl_verify_pss(out, tmp_path, "signer-rsa2048")
    assert_signing_certificate_v2(out, "signer-rsa2048")
    # the referee can fail: one flipped bit in the signed data and openssl refuses
    bad = tmp_path / "bad.xml"
    bad.write_bytes(out.read_bytes().replace(b"<ds:DigestValue>", b"<ds:DigestValue>A", 1))
    with pytest.raises(AssertionError):
        openssl_verify_pss(bad, tmp_path, "signer-rsa2048")


def test_inclusive_c14n_carries_ancestor_xml_attributes(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """xml:lang/xml:space on the root belong to the canonical SignedInfo (C14N 1.0
    §2.4), and a PI before the root to a whole-document reference. signxml
    canonicalises detached copies (of the Signature, of the root element) and so
    drops both; xmlsec1 follows the spec and is the referee here."""
    (src,) = copy(tmp_path, "xml-lang.xml")
    for args in (["--reference", "nd"], []):
        out = tmp_path / "out.xml"
        proc = skx(str(src), *KEY, "-o", str(out), "--force", *args)
        assert proc.returncode == 0, proc.stderr
        assert_xmlsec_ok(out, tmp_path, id_attrs=("--id-attr:Id noiDung",))
        rest, _ = cut_signature(out)
        assert rest == src.read_bytes()
    # the PI is covered: changing it breaks the whole-document reference
    out.write_bytes(out.read_bytes().replace(b"keep this", b"drop this"))
    assert xmlsec_verify(out, tmp_path).returncode != 0


# ---------------------------------------------------------------- XAdES


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT"])
def test_xades_levels(skx, tmp_path: Path, level: str) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "generic.xml")
    out = tmp_path / "out.xml"
    extra = ["--tsa", TSA_URL] if level != "B-B" else []
    proc = skx(
        str(src),
        *KEY,
        "-o",
        str(out),
        "--level",
        level,
        *extra,
        "--signer-role",
        "Văn thư",
        "--data-object-format",
        "text/xml",
        "--revocation",
        "hard",
    )
    assert proc.returncode == 0, proc.stderr
    sig = signature_element(out)
    refs = sig.findall("ds:SignedInfo/ds:Reference", NS)
    assert [r.get("Type") for r in refs] == [None, "http://uri.etsi.org/01903#SignedProperties"]
    props = sig.find("ds:Object/xades:QualifyingProperties", NS)
    assert props.get("Target") == "#" + sig.get("Id")
    signing_time = props.findtext(".//xades:SigningTime", namespaces=NS)
    assert signing_time.endswith("+07:00")
    assert props.findtext(".//xades:ClaimedRole", namespaces=NS) == "Văn thư"
    dof = props.find(".//xades:DataObjectFormat", NS)
    assert dof.get("ObjectReference") == "#" + refs[0].get("Id")
    assert dof.findtext("xades:MimeType", namespaces=NS) == "text/xml"
    assert_xmlsec_ok(out, tmp_path)
    signxml_verify(out, "signer-rsa2048", xades=True, references=2)
    assert_signing_certificate_v2(out, "signer-rsa2048")
    assert own_check(out).xades
    rest, _ = cut_signature(out)
    assert rest == src.read_bytes()
    stamps = sig.findall(".//xades:UnsignedSignatureProperties/xades:SignatureTimeStamp", NS)
    assert len(stamps) == (0 if level == "B-B" else 1)
    if level != "B-B":
        _check_signature_timestamp(out, stamps[0], tmp_path)
    values = sig.find(".//xades:UnsignedSignatureProperties/xades:CertificateValues", NS)
    assert (values is not None) == (level == "B-LT")
    if level == "B-LT":
        _check_validation_values(sig, stamps[0])


def _check_validation_values(sig, stamp) -> None:  # type: ignore[no-untyped-def]
    """B-LT: the chains of the signer and of the TSA, and OCSP responses that
    say 'good' for the signer and the TSA certificates, parsed here with asn1crypto."""
    from asn1crypto import cms, ocsp
    from asn1crypto import x509 as ax509

    usp = sig.find(".//xades:UnsignedSignatureProperties", NS)
    names = [child.tag.split("}", 1)[1] for child in usp]
    assert names == ["SignatureTimeStamp", "CertificateValues", "RevocationValues"]
    certs = [
        ax509.Certificate.load(base64.b64decode(e.text))
        for e in usp.findall("xades:CertificateValues/xades:EncapsulatedX509Certificate", NS)
    ]
    subjects = {c.subject.native["common_name"] for c in certs}
    token = cms.ContentInfo.load(
        base64.b64decode(stamp.findtext("xades:EncapsulatedTimeStamp", namespaces=NS))
    )
    sid = token["content"]["signer_infos"][0]["sid"].chosen
    (tsa,) = [
        c.chosen
        for c in token["content"]["certificates"]
        if c.chosen.serial_number == sid["serial_number"].native
    ]
    wanted = {
        ax509.Certificate.load(pki_certificate(label)).subject.native["common_name"]
        for label in ("signer-rsa2048", "interm-ca", "root-ca")
    }
    assert wanted <= subjects and tsa.subject.native["common_name"] in subjects
    answered = set()
    for e in usp.findall("xades:RevocationValues/xades:OCSPValues/xades:EncapsulatedOCSPValue", NS):
        response = ocsp.OCSPResponse.load(base64.b64decode(e.text))
        assert response["response_status"].native == "successful"
        for single in response.basic_ocsp_response["tbs_response_data"]["responses"]:
            assert single["cert_status"].name == "good"
            answered.add(single["cert_id"]["serial_number"].native)
    signer = ax509.Certificate.load(pki_certificate("signer-rsa2048"))
    assert signer.serial_number in answered and tsa.serial_number in answered


def _pem(der: bytes) -> str:
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"


def _check_signature_timestamp(out: Path, stamp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """openssl ts -verify, with the imprint recomputed here: SHA-256 of the
    canonicalised ds:SignatureValue element, in its document."""
    assert stamp.find("ds:CanonicalizationMethod", NS).get("Algorithm") == (
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    )
    token = base64.b64decode(stamp.findtext("xades:EncapsulatedTimeStamp", namespaces=NS))
    value = parse(out).getroot().find(".//ds:SignatureValue", NS)
    # SignatureValue has no child elements and the document no xml:* attributes
    # above it, so lxml's subtree canonicalisation is exact here.
    canonical = etree.tostring(value, method="c14n", with_comments=False)
    # inclusive: the namespaces in scope from the document come along
    assert canonical.startswith(b'<ds:SignatureValue xmlns:cv="urn:signkit:test:congvan" ')
    (tmp_path / "token.der").write_bytes(token)
    (tmp_path / "root.pem").write_text(_pem(pki_certificate("root-ca")))
    (tmp_path / "interm.pem").write_text(_pem(pki_certificate("interm-ca")))
    ts = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            hashlib.sha256(canonical).hexdigest(),
            "-in",
            str(tmp_path / "token.der"),
            "-token_in",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "interm.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in ts.stdout, ts.stdout + ts.stderr
    # and the same check fails for any other imprint
    wrong = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-digest",
            hashlib.sha256(canonical + b" ").hexdigest(),
            "-in",
            str(tmp_path / "token.der"),
            "-token_in",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "interm.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" not in wrong.stdout


def test_b_t_needs_a_tsa(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "generic.xml")
    proc = skx(str(src), *KEY, "--level", "B-T")
    assert proc.returncode == 2 and "need --tsa URL" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".xml") == ["generic.xml"]


# ---------------------------------------------------------------- forms


def test_enveloping_form(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "einvoice.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *KEY, "-o", str(out), "--form", "enveloping", "--level", "B-B")
    assert proc.returncode == 0, proc.stderr
    root = parse(out).getroot()
    assert root.tag == "{http://www.w3.org/2000/09/xmldsig#}Signature"
    obj = root.find(f"ds:Object[@Id='{root.get('Id')}-object']", NS)
    assert obj[0].tag == "HDon"
    # the document element's bytes are carried unchanged
    original = src.read_bytes()
    body = original[original.index(b"<HDon>") : original.index(b"</HDon>") + 7]
    assert body in out.read_bytes()
    assert_xmlsec_ok(out, tmp_path)
    signxml_verify(out, "signer-rsa2048", xades=True, references=2)


def test_detached_form(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path / "in", "tax-declaration.xml")
    proc = skx(str(src), *KEY, "--form", "detached", "--output-dir", str(tmp_path / "sig"))
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "sig" / "tax-declaration.xml"
    sig = parse(out).getroot()
    ref = sig.find("ds:SignedInfo/ds:Reference", NS)
    assert ref.get("URI") == "../in/tax-declaration.xml"
    assert src.read_bytes() == (XML / "tax-declaration.xml").read_bytes()
    assert_xmlsec_ok(out, tmp_path)
    from cryptography import x509
    from signxml import SignatureConfiguration, XMLVerifier

    cert = x509.load_der_x509_certificate(pki_certificate("signer-rsa2048"))
    XMLVerifier().verify(
        out.read_bytes(),
        x509_cert=cert,
        uri_resolver=lambda uri: (out.parent / uri).read_bytes(),
        expect_config=SignatureConfiguration(expect_references=1),
    )
    # a changed data file no longer verifies (the referee can fail)
    src.write_bytes(src.read_bytes().replace(b"650000", b"950000", 1))
    assert xmlsec_verify(out, tmp_path).returncode != 0


def test_detached_signature_over_an_element_of_another_document(  # type: ignore[no-untyped-def]
    skx, signkit, trust, tmp_path: Path
) -> None:
    """``--form detached --reference ID``: the signature, a file of its own,
    signs one element of the data document (URI ``data.xml#ID``), canonicalised
    where it stands there; the data document is left as it was."""
    (src,) = copy(tmp_path / "in", "einvoice.xml")
    data_id = etree.parse(str(src)).getroot().find("DLHDon").get("Id")
    out = tmp_path / "sig" / "einvoice.sig.xml"
    proc = skx(str(src), *KEY, "--form", "detached", "--reference", data_id, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert src.read_bytes() == (XML / "einvoice.xml").read_bytes()
    ref = parse(out).getroot().find("ds:SignedInfo/ds:Reference", NS)
    assert ref.get("URI") == f"../in/einvoice.xml#{data_id}"
    algorithms = [t.get("Algorithm") for t in ref.findall("ds:Transforms/ds:Transform", NS)]
    assert algorithms == ["http://www.w3.org/TR/2001/REC-xml-c14n-20010315"]
    # the digest recomputed here, with lxml's C14N of the element alone
    element = etree.parse(str(src)).getroot().find("DLHDon")
    expected = hashlib.sha256(etree.tostring(element, method="c14n")).digest()
    assert base64.b64decode(ref.findtext("ds:DigestValue", namespaces=NS)) == expected
    # signxml's verifier, handed the element of the other document
    from cryptography import x509
    from signxml import SignatureConfiguration, XMLVerifier

    def element_of(uri: str) -> object:
        name, _, frag = uri.partition("#")
        root = etree.parse(str(out.parent / name)).getroot()
        (hit,) = root.xpath("//*[@Id=$v]", v=frag)
        return hit

    cert = x509.load_der_x509_certificate(pki_certificate("signer-rsa2048"))
    XMLVerifier().verify(
        out.read_bytes(),
        x509_cert=cert,
        uri_resolver=element_of,
        expect_config=SignatureConfiguration(expect_references=1),
    )
    verify = signkit("verify", str(out), "--trust", str(trust), "--json", "--no-audit")
    assert verify.returncode == 0, verify.stderr
    (sig,) = json.loads(verify.stdout)["documents"][0]["verdict"]["signatures"]
    assert sig["indication"] == "PASSED"
    assert sig["coverage"] == f"element:DLHDon#{data_id} (in ../in/einvoice.xml)"
    # content outside the element is not signed; inside it is
    src.write_bytes(src.read_bytes().replace(b"<HDon>", b"<HDon>\n<!-- note -->", 1))
    assert signkit("verify", str(out), "--trust", str(trust), "--no-audit").returncode == 0
    src.write_bytes(src.read_bytes().replace(b"650000", b"950000", 1))
    tampered = signkit("verify", str(out), "--trust", str(trust), "--json", "--no-audit")
    assert tampered.returncode == 1
    (sig,) = json.loads(tampered.stdout)["documents"][0]["verdict"]["signatures"]
    assert sig["sub_indication"] == "HASH_FAILURE"
    src.unlink()
    gone = signkit("verify", str(out), "--trust", str(trust), "--json", "--no-audit")
    (sig,) = json.loads(gone.stdout)["documents"][0]["verdict"]["signatures"]
    assert sig["indication"] == "INDETERMINATE"
    assert sig["sub_indication"] == "SIGNED_DATA_NOT_FOUND"


def test_detached_element_by_xml_id_checked_by_xmlsec1(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """xmlsec1 dereferences ``file#id`` as XPointer id(), which only sees
    ID-typed attributes: xml:id is one everywhere, so it can referee this form."""
    data = tmp_path / "in" / "exchange.xml"
    data.parent.mkdir()
    data.write_bytes(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<GoiTin xmlns="urn:example:lienthong">\n'
        b"  <Header><From>So Noi vu</From></Header>\n"
        b'  <NoiDung xml:id="nd-1"><VanBan so="12/QD-UBND">Quy\xe1\xba\xbft \xc4\x91\xe1\xbb\x8bnh'
        b"</VanBan></NoiDung>\n</GoiTin>\n"
    )
    out = tmp_path / "exchange.sig.xml"
    proc = skx(str(data), *KEY, "--form", "detached", "--reference", "nd-1", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ref = parse(out).getroot().find("ds:SignedInfo/ds:Reference", NS)
    assert ref.get("URI") == "in/exchange.xml#nd-1"
    assert_xmlsec_ok(out, tmp_path)
    data.write_bytes(data.read_bytes().replace(b"12/QD", b"13/QD"))
    assert xmlsec_verify(out, tmp_path).returncode != 0  # the referee can fail


# ---------------------------------------------------------------- presets


def test_vn_einvoice_preset(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inputs = copy(tmp_path / "in", "einvoice.xml", "einvoice-crlf.xml")
    proc = skx(
        str(tmp_path / "in"),
        *VN_KEY,
        "--preset",
        "vn-einvoice",
        "--output-dir",
        str(tmp_path / "out"),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    # the seller MST of the second invoice differs from the certificate's
    assert "MST:0100000000-999 differs from NBan/MST 0100000000-888" in proc.stderr
    assert "einvoice-crlf.xml" in proc.stderr and proc.stderr.count("differs from") == 1
    assert any("0100000000-888" in w for w in json.loads(proc.stdout)["warnings"])
    for src in inputs:
        out = tmp_path / "out" / src.name
        tree = parse(out)
        sig = tree.getroot().find("DSCKS/NBan/{http://www.w3.org/2000/09/xmldsig#}Signature")
        assert sig is not None, "Signature not in HDon/DSCKS/NBan"
        assert sig.prefix is None  # the XMLDSig namespace is the default there
        invoice_id = tree.getroot().find("DLHDon").get("Id")
        refs = sig.findall("ds:SignedInfo/ds:Reference", NS)
        assert [r.get("URI") for r in refs] == [
            f"#{invoice_id}",
            f"#SigningTime-{sig.get('Id')}",
        ]
        assert [t.get("Algorithm") for t in refs[0].findall("ds:Transforms/ds:Transform", NS)] == [
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        ]
        assert sig.find("ds:SignedInfo/ds:CanonicalizationMethod", NS).get("Algorithm") == (
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
        )
        assert (
            sig.find("ds:SignedInfo/ds:SignatureMethod", NS).get("Algorithm").endswith("rsa-sha256")
        )
        x509data = sig.find("ds:KeyInfo/ds:X509Data", NS)
        assert [etree.QName(c).localname for c in x509data] == [
            "X509SubjectName",
            "X509Certificate",
        ]
        assert "MST:0100000000-999" in x509data.findtext("ds:X509SubjectName", namespaces=NS)
        assert base64.b64decode(x509data.findtext("ds:X509Certificate", namespaces=NS)) == (
            pki_certificate("signer-vn")
        )
        stime = sig.findtext(
            "ds:Object/ds:SignatureProperties/ds:SignatureProperty/ds:SigningTime", namespaces=NS
        )
        assert len(stime) == 19 and "+" not in stime  # local time without offset, as seen
        assert_xmlsec_ok(out, tmp_path, id_attrs=(DLHDON_ID,))
        signxml_verify(
            out,
            "signer-vn",
            xades=False,
            references=2,
            default_namespace=True,
            validate_schema=False,
        )
    # einvoice.xml had <NBan/>; einvoice-crlf.xml had no DSCKS: it was created
    # before </HDon>. Outside that, every byte (CRLF, comment, &#272;, quotes) stays.
    out = (tmp_path / "out" / "einvoice-crlf.xml").read_bytes()
    rest, _block = without(out, b"<DSCKS><NBan><Signature ", b"</Signature></NBan></DSCKS>")
    assert rest == (XML / "einvoice-crlf.xml").read_bytes()
    assert b"\r\n" in rest and b"VN&#272;" in rest
    out = (tmp_path / "out" / "einvoice.xml").read_bytes()
    rest, _block = without(out, b"<NBan><Signature ", b"</Signature></NBan>")
    assert rest == (XML / "einvoice.xml").read_bytes().replace(b"<NBan/>", b"", 1)


def test_vn_tax_declaration_preset(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "tax-declaration.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *VN_KEY, "--preset", "vn-tax-declaration", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    ns = "{http://kekhaithue.gdt.gov.vn/TKhaiThue}"
    root = parse(out).getroot()
    sig = root.find(f"{ns}CKyDTu/{{http://www.w3.org/2000/09/xmldsig#}}Signature")
    assert sig is not None
    assert sig.find("ds:SignedInfo/ds:Reference", NS).get("URI") == "#ID_1"
    assert_xmlsec_ok(out, tmp_path, id_attrs=(HTKK_ID,))
    signxml_verify(out, "signer-vn", xades=False, references=1, default_namespace=True)
    data = out.read_bytes()
    i, j = data.index(b"<CKyDTu>"), data.index(b"</CKyDTu>") + len(b"</CKyDTu>")
    assert data[:i] + b"<CKyDTu/>" + data[j:] == src.read_bytes()


def test_user_preset_from_the_config_file(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.toml"
    config.write_text(
        "[xml-presets.cong-van]\n"
        'parent_path = ["congVan"]\n'
        'reference = "trich-yeu"\n'
        'level = "B-B"\n'
        'signer_role = "Chánh văn phòng"\n',
        encoding="utf-8",
    )
    (src,) = copy(tmp_path, "generic.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *KEY, "-o", str(out), "--preset", "cong-van", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    sig = signature_element(out)
    assert sig.find("ds:SignedInfo/ds:Reference", NS).get("URI") == "#trich-yeu"
    assert sig.findtext(".//xades:ClaimedRole", namespaces=NS) == "Chánh văn phòng"
    signxml_verify(out, "signer-rsa2048", xades=True, references=2)
    assert_xmlsec_ok(out, tmp_path, id_attrs=("--id-attr:Id urn:signkit:test:congvan:trichYeu",))
    # unknown presets and bad tables are configuration errors, before the token
    proc = skx(str(src), *KEY, "--preset", "nope", "--config", str(config), "--force")
    assert proc.returncode == 2 and "unknown preset 'nope'" in proc.stderr
    config.write_text('[xml-presets.bad]\nparent_pathh = ["x"]\n', encoding="utf-8")
    proc = skx(str(src), *KEY, "--preset", "bad", "--config", str(config), "--force")
    assert proc.returncode == 5 and "unknown key(s) parent_pathh" in proc.stderr


# ---------------------------------------------------------------- hostile input


class _Listener:
    """A loopback TCP listener that records every connection (there must be none)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def listener():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_xml", FIXTURES / "make_xml_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    watch = _Listener(module.LISTENER_PORT)
    # the listener works: a connection is counted
    with socket.create_connection(("127.0.0.1", module.LISTENER_PORT)):
        pass
    deadline = __import__("time").monotonic() + 5
    while watch.connections == 0 and __import__("time").monotonic() < deadline:
        pass
    assert watch.connections == 1
    watch.connections = 0
    try:
        yield watch
    finally:
        watch.close()


ENTITIES = "the DOCTYPE declares or uses entities: refused"
HOSTILE_CASES = {
    "billion-laughs.xml": ENTITIES,
    "xxe-local-file.xml": ENTITIES,
    "xxe-url.xml": ENTITIES,
    "external-dtd.xml": "the DOCTYPE names an external DTD: refused (nothing is fetched)",
    "parameter-entity.xml": ENTITIES,
    "attlist-then-entity.xml": ENTITIES,
    "deep-nesting.xml": "nesting deeper than 256 levels",
}


def test_hostile_corpus_is_refused_with_nothing_written_and_no_network(  # type: ignore[no-untyped-def]
    skx, tmp_path: Path, listener
) -> None:
    src_dir = tmp_path / "in"
    src_dir.mkdir()
    for name in HOSTILE_CASES:
        shutil.copy(HOSTILE / name, src_dir / name)
    big = src_dir / "huge-text.xml"
    with big.open("wb") as fh:  # 100 MB text node, made here rather than committed
        fh.write(b"<?xml version='1.0'?><r>")
        chunk = b"A" * (1 << 20)
        for _ in range(100):
            fh.write(chunk)
        fh.write(b"</r>")
    # under the size limit, over libxml2's text-node limit, with a DTD: refused
    # (without a DTD the node is read: see test_a_large_base64_node_is_signed)
    text_node = src_dir / "text-node-20mb.xml"
    text_node.write_bytes(
        b"<!DOCTYPE r [<!ATTLIST r id ID #IMPLIED>]><r>" + b"B" * (20 << 20) + b"</r>"
    )
    cases = {
        **HOSTILE_CASES,
        "huge-text.xml": "document larger than 64 MiB",
        "text-node-20mb.xml": "text node exceeds the parser's size limit",
    }
    for name, message in cases.items():
        path = src_dir / name
        before = sorted(p.name for p in src_dir.iterdir())
        proc = skx(str(path), *KEY)
        assert proc.returncode == 1, (name, proc.stderr)  # a document failed (as for PDF)
        lines = proc.stderr.strip().splitlines()
        assert lines == [f"error: {path}: {lines[0].split(': ', 2)[2]}"], (name, proc.stderr)
        assert message in lines[0], (name, lines[0])
        assert "Traceback" not in proc.stderr
        assert sorted(p.name for p in src_dir.iterdir()) == before, name
    # the whole corpus in one batch: every document failed with the input code
    proc = skx(str(src_dir), *KEY, "--json")
    assert proc.returncode == 1
    docs = json.loads(proc.stdout)["documents"]
    assert len(docs) == len(cases) and all(d["error_code"] == 3 for d in docs)
    assert not [
        p for p in src_dir.iterdir() if "_signed" in p.name or p.name.startswith(".signkit")
    ]
    assert listener.connections == 0
    big.unlink()
    text_node.unlink()


def test_a_large_base64_node_is_signed(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A document carrying a 12 MB base64 file (over libxml2's 10 MB text-node
    limit) and no DTD is signed, byte-preserved, and xmlsec1 verifies it."""

    src = tmp_path / "ho-so.xml"
    blob = base64.encodebytes(bytes(range(256)) * (36 << 10)).decode("ascii")
    assert len(blob) > 10_000_000
    src.write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<HoSo><TepDinhKem>{blob}</TepDinhKem></HoSo>\n',
        encoding="utf-8",
    )
    out = tmp_path / "ho-so-signed.xml"
    proc = skx(str(src), *KEY, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert_xmlsec_ok(out, tmp_path)
    rest, _ = cut_signature(out)
    assert rest == src.read_bytes()


def test_internal_dtd_declaring_ids_is_accepted_and_its_ids_honoured(  # type: ignore[no-untyped-def]
    skx, signkit, trust, tmp_path: Path
) -> None:
    """Regression: a document whose internal DTD subset only declares an ID
    attribute (as interoperability files do) was refused outright. The
    declared ID (maSo, not an Id name signkit knows) is what --reference
    finds, and xmlsec1 resolves it from the same DTD (no --id-attr)."""
    (src,) = copy(tmp_path, "dtd-ids.xml")
    out = tmp_path / "out.xml"
    proc = skx(str(src), *KEY, "-o", str(out), "--reference", "vb-1", "--level", "B-B")
    assert proc.returncode == 0, proc.stderr
    assert signature_element(out).find("ds:SignedInfo/ds:Reference", NS).get("URI") == "#vb-1"
    rest, _ = cut_signature(out)
    assert rest == src.read_bytes()
    assert_xmlsec_ok(out, tmp_path)
    verify = signkit("verify", str(out), "--trust", str(trust), "--json", "--no-audit")
    assert verify.returncode == 0, verify.stderr
    (sig,) = json.loads(verify.stdout)["documents"][0]["verdict"]["signatures"]
    assert sig["coverage"].startswith("element:vanBan#vb-1 (/hoSo/vanBan)")
    # the signed element changed: both verifiers refuse it
    out.write_bytes(out.read_bytes().replace("12/QĐ".encode(), "13/QĐ".encode()))
    assert xmlsec_verify(out, tmp_path).returncode != 0
    assert signkit("verify", str(out), "--trust", str(trust), "--no-audit").returncode == 1


# ---------------------------------------------------------------- error paths


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        (None, ["--reference", "khong-co"], 1, 'no element with Id="khong-co"'),
        ("dup", ["--reference", "trich-yeu"], 1, 'duplicate Id "trich-yeu" (2 elements)'),
        (None, ["--signature-parent", "/cv:congVan/nowhere"], 1, "no element matches"),
        (None, ["--signature-parent", "/zz:congVan"], 1, "cannot evaluate"),
        (None, ["--signature-parent", "/*/missing"], 1, "no element matches the signature parent"),
        ("text", [], 1, "not XML (no root element)"),
        ("broken", [], 1, "malformed XML"),
        ("latin1", [], 1, "encoding ISO-8859-1 is not supported (only UTF-8)"),
        ("utf16", [], 1, "not UTF-8 (UTF-16/32 byte order mark)"),
        (None, ["--preset", "vn-einvoice"], 1, "the root element is congVan, not HDon"),
        (None, ["--signature-parent", "//*["], 2, "is not a valid XPath"),
        (None, ["--signer-role", "x"], 2, "XAdES property"),
    ],
)
def test_error_paths_write_nothing(  # type: ignore[no-untyped-def]
    skx, tmp_path: Path, setup: str | None, args: list[str], code: int, message: str
) -> None:
    (src,) = copy(tmp_path / "in", "generic.xml")
    if setup == "dup":
        src.write_bytes(src.read_bytes().replace(b"<ghiChu ", b'<ghiChu Id="trich-yeu" ', 1))
    elif setup == "text":
        src.write_text("Kính gửi: văn thư. This is not XML.", encoding="utf-8")
    elif setup == "broken":
        src.write_bytes(src.read_bytes()[:200])
    elif setup == "latin1":
        src.write_bytes(b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<r>caf\xe9</r>\n')
    elif setup == "utf16":
        src.write_bytes('<?xml version="1.0" encoding="UTF-16"?><r/>'.encode("utf-16"))
    before = src.read_bytes()
    proc = skx(str(src), *KEY, *args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["generic.xml"]
    assert src.read_bytes() == before


def test_existing_output_is_never_overwritten(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path, "generic.xml")
    out = tmp_path / "generic_signed.xml"
    out.write_bytes(b"<not-ours/>")
    proc = skx(str(src), *KEY)
    assert proc.returncode == 1 and "output exists (use --force" in proc.stderr
    assert out.read_bytes() == b"<not-ours/>"
    assert skx(str(src), *KEY, "--force").returncode == 0
    assert_xmlsec_ok(out, tmp_path)


def test_in_place_and_dry_run(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (src,) = copy(tmp_path / "in", "tax-declaration.xml")
    src.chmod(0o640)
    dry = skx(str(src), *KEY, "--in-place", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["totals"]["planned"] == 1
    assert src.read_bytes() == (XML / "tax-declaration.xml").read_bytes()
    proc = skx(str(src), *KEY, "--in-place", "--preset", "vn-tax-declaration")
    assert proc.returncode == 0, proc.stderr
    assert src.stat().st_mode & 0o777 == 0o640
    assert_xmlsec_ok(src, tmp_path, id_attrs=(HTKK_ID,))
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["tax-declaration.xml"]
    again = skx(str(src), *KEY, "--in-place", "--preset", "vn-tax-declaration", "--json")
    assert json.loads(again.stdout)["totals"]["skipped"] == 1


def test_manifest_rows_override_options(skx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy(tmp_path, "generic.xml", "xml-lang.xml")
    manifest = tmp_path / "batch.csv"
    manifest.write_text(
        "input,output,reference,level,signer-role\n"
        "generic.xml,out/a.xml,trich-yeu,B-B,Văn thư\n"
        "xml-lang.xml,out/b.xml,,,\n",
        encoding="utf-8",
    )
    proc = skx("--manifest", str(manifest), *KEY, "--json")
    assert proc.returncode == 0, proc.stderr
    a = signature_element(tmp_path / "out" / "a.xml")
    assert a.find("ds:SignedInfo/ds:Reference", NS).get("URI") == "#trich-yeu"
    assert a.findtext(".//xades:ClaimedRole", namespaces=NS) == "Văn thư"
    b = signature_element(tmp_path / "out" / "b.xml")
    assert b.find("ds:SignedInfo/ds:Reference", NS).get("URI") == ""
    assert b.find("ds:Object", NS) is None  # plain XMLDSig
    assert_xmlsec_ok(
        tmp_path / "out" / "a.xml",
        tmp_path,
        id_attrs=("--id-attr:Id urn:signkit:test:congvan:trichYeu",),
    )
    assert_xmlsec_ok(tmp_path / "out" / "b.xml", tmp_path)
    signxml_verify(tmp_path / "out" / "a.xml", "signer-rsa2048", xades=True, references=2)
    # a row naming an unknown column is refused before anything is signed
    manifest.write_text("input,colour\ngeneric.xml,red\n", encoding="utf-8")
    proc = skx("--manifest", str(manifest), *KEY)
    assert proc.returncode == 2 and "unknown column(s) colour" in proc.stderr


def test_xml_runs_write_the_same_sealed_audit_records(skx, signkit, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The audit trail of `sign xml` is the one `sign pdf` writes: run-start with the
    token and signer, a record per document, run-end, seals; `audit verify` accepts it."""
    files = copy(tmp_path / "in", "generic.xml", "einvoice.xml")
    proc = skx(*map(str, files), *KEY, "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    log = tmp_path / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    kinds = [r["type"] for r in records]
    assert kinds[0] == "run-start" and "run-end" in kinds and "seal" in kinds
    start = records[0]
    assert start["command"] == "sign xml" and start["token"]["serial"]
    assert start["signer"]["sha256"]
    results = [r for r in records if r["type"] == "document-result"]
    assert len(results) == 2 and all(r["status"] == "signed" for r in results)
    check = signkit("audit", "verify", str(log), env={"XDG_STATE_HOME": str(tmp_path / "state")})
    assert check.returncode == 0, check.stderr


def test_every_signkit_signed_xml_passes_signkit_verify(
    skx, signkit, trust, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Regression: a vn-einvoice output was FAILED as 'signature wrapping' (its
    SigningTime Object) and crashed the verifier on the XMLDSig schema."""
    einvoice, tax, generic = copy(
        tmp_path / "in", "einvoice.xml", "tax-declaration.xml", "generic.xml"
    )
    out = tmp_path / "out"
    runs = [
        (einvoice, "einvoice.xml", ["--preset", "vn-einvoice"]),
        (tax, "tax-declaration.xml", ["--preset", "vn-tax-declaration"]),
        (generic, "generic.xml", ["--level", "B-T", "--tsa", TSA_URL]),
        (generic, "generic-lt.xml", ["--level", "B-LT", "--tsa", TSA_URL]),
        # detached signatures were FAILED: their data is outside the document
        (einvoice, "einvoice.sig.xml", ["--form", "detached", "--level", "B-B"]),
        (tax, "tax.sig.xml", ["--form", "detached", "--reference", "ID_1", "--id-attribute", "id"]),
    ]
    for source, name, extra in runs:
        proc = skx(str(source), *KEY, "-o", str(out / name), *extra)
        assert proc.returncode == 0, proc.stderr
    proc = signkit("verify", str(out), "--trust", str(trust), "--json", "--no-audit")
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)["documents"]
    assert len(docs) == 6
    for doc in docs:
        sigs = doc["verdict"]["signatures"]
        assert [s["indication"] for s in sigs] == ["PASSED"], (doc["input"], sigs)
    # B-LT carries its own validation data: offline, with revocation required,
    # it is still judged (a B-T signature cannot be)
    offline = {}
    for name in ("generic.xml", "generic-lt.xml"):
        check = signkit(
            "verify", str(out / name), "--trust", str(trust), "--offline",
            "--revocation", "hard", "--json", "--no-audit",
        )  # fmt: skip
        (sig,) = json.loads(check.stdout)["documents"][0]["verdict"]["signatures"]
        offline[name] = (check.returncode, sig["indication"], sig["level"])
    assert offline["generic-lt.xml"] == (0, "PASSED", "B-LT"), offline
    assert offline["generic.xml"][:2] == (6, "INDETERMINATE"), offline
