"""edXML packages (QCVN 102:2016): `sign xml --preset vn-edxml` and `signkit verify`.

Packages are built at test time by fixtures/make_edxml.py around PDFs that
pyHanko signs with the test PKI's keys; the envelope is signed by signkit on
SoftHSM. xmlsec1 is the referee of the envelope signature, pdfsig of the
attachments (decoded here, independently of signkit).
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from support.infra import FIXTURES, PkiServices, SoftHsm, pki_certificate
from support.runner import Runner
from support.xmlcheck import xmlsec_verify

sys.path.insert(0, str(FIXTURES))
from make_edxml import Header, Item, build_package, signed_pdf

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

EDXML = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
DS = "http://www.w3.org/2000/09/xmldsig#"
VN_KEY = ["--token-label", "signkit-test-a", "--key-label", "key-vn"]
Verify = Callable[..., tuple[Any, dict[str, Any]]]


@pytest.fixture(scope="module")
def pdfs(pki: PkiServices) -> dict[str, bytes]:
    """The decision and its appendix, signed by pyHanko (made once per module)."""
    return {
        "decision": signed_pdf("decision.pdf"),
        "appendix": signed_pdf("appendix.pdf", sample="two-pages.pdf"),
    }


def package(path: Path, pdfs: dict[str, bytes], **header: str) -> Path:
    items = [Item("12-QĐ-UBND.pdf", pdfs["decision"]), Item("Phụ lục 1.pdf", pdfs["appendix"])]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build_package(items, Header(**header)))
    return path


@pytest.fixture
def sign(signkit: Runner, softhsm: SoftHsm, pki: PkiServices, tmp_path: Path, trust: Path):  # type: ignore[no-untyped-def]
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return signkit(
            "sign",
            "xml",
            *args,
            *VN_KEY,
            "--preset",
            "vn-edxml",
            "--trust",
            str(trust),
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
            env={
                "SIGNKIT_MODULE": softhsm.module,
                "SIGNKIT_PIN": softhsm.user_pin,
                "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
            },
        )

    return run


@pytest.fixture
def verify(signkit: Runner, pki: PkiServices, trust: Path, tmp_path: Path) -> Verify:
    def run(*args: str) -> tuple[Any, dict[str, Any]]:
        proc = signkit(
            "verify",
            *args,
            "--trust",
            str(trust),
            "--json",
            "--audit-log",
            str(tmp_path / "audit.jsonl"),
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode != 70, proc.stderr
        assert proc.stdout, proc.stderr
        return proc, json.loads(proc.stdout)

    return run


def signed_one(sign: Any, pdfs: dict[str, bytes], tmp_path: Path, name: str = "qd-12") -> Path:
    src = package(tmp_path / "in" / f"{name}.edxml", pdfs)
    out = tmp_path / "out" / f"{name}.edxml"
    out.parent.mkdir(exist_ok=True)
    proc = sign(str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def pdfsig_ok(data: bytes, tmp: Path) -> str:
    """pdfsig's report on an attachment decoded here (not by signkit)."""
    path = tmp / "pdfsig-input.pdf"
    path.write_bytes(data)
    proc = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False)
    return proc.stdout


def attachments_of(path: Path) -> list[tuple[str, bytes]]:
    root = etree.fromstring(path.read_bytes(), etree.XMLParser(resolve_entities=False))
    out = []
    for att in root.iter(f"{{{EDXML}}}Attachment"):
        name = att.findtext(f"{{{EDXML}}}AttachmentName")
        data = base64.b64decode(att.findtext(f"{{{EDXML}}}ContentTransferEncoded"))
        out.append((name, data))
    return out


def test_batch_signs_with_the_preset_and_verifies(sign, verify, pdfs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox = tmp_path / "batch"
    sources = [package(inbox / f"qd-{n}.edxml", pdfs, code_number=str(n)) for n in (12, 13)]
    # a header that claims another sender than the PDFs' signer (Nam Định)
    sources.append(
        package(
            inbox / "qd-14.edxml",
            pdfs,
            code_number="14",
            organ_name="Ủy ban nhân dân tỉnh Thái Bình",
            place="Thái Bình",
        )
    )
    proc = sign(str(inbox), "--output-dir", str(tmp_path / "signed"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["signed"] == 3
    outputs = sorted((tmp_path / "signed").glob("*.edxml"))
    assert len(outputs) == 3
    for src, out in zip(sources, outputs, strict=True):
        data = out.read_bytes()
        root = etree.fromstring(data)
        header = root.find(f"{{{EDXML}}}edXMLEnvelope/{{{EDXML}}}edXMLHeader")
        sig = header[-1]
        # the last child of edXMLHeader, in the XMLDSig default namespace
        assert sig.tag == f"{{{DS}}}Signature" and sig.prefix is None
        si = sig.find(f"{{{DS}}}SignedInfo")
        assert si.find(f"{{{DS}}}CanonicalizationMethod").get("Algorithm") == (
            "http://www.w3.org/2001/10/xml-exc-c14n#"
        )
        assert si.find(f"{{{DS}}}SignatureMethod").get("Algorithm") == (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        )
        ref = si.find(f"{{{DS}}}Reference")
        assert ref.get("URI") == ""
        assert [t.get("Algorithm") for t in ref.iter(f"{{{DS}}}Transform")] == [
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
            "http://www.w3.org/2001/10/xml-exc-c14n#",
        ]
        x509 = sig.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data")
        assert [etree.QName(c).localname for c in x509] == ["X509SubjectName", "X509Certificate"]
        # the rest byte for byte
        start = data.index(b"<Signature ")
        end = data.index(b"</Signature>") + len(b"</Signature>")
        assert data[:start] + data[end:] == src.read_bytes()
        # the referee: xmlsec1 verifies the envelope against the test root
        referee = xmlsec_verify(out, tmp_path)
        assert referee.returncode == 0 and referee.stderr.startswith("OK"), referee.stderr
        # pdfsig on the attachments, decoded here
        for _name, pdf in attachments_of(out):
            assert "Signature is Valid." in pdfsig_ok(pdf, tmp_path)
    proc, data = verify(str(tmp_path / "signed"))
    assert proc.returncode == 0, proc.stderr
    for doc in data["documents"]:
        v = doc["verdict"]
        assert v["format"] == "edxml" and v["indication"] == "PASSED", v
        names = [s["name"] for s in v["signatures"]]
        assert names[0].startswith("edXMLHeader")
        assert [s["attachment"] for s in v["signatures"][1:]] == ["12-QĐ-UBND.pdf", "Phụ lục 1.pdf"]
        first = v["signatures"][1]
        assert "Nam Định" in first["signer_subject"]
        code = doc["input"].rsplit("qd-", 1)[1].split(".")[0]
        assert f"Code {code}/QĐ-UBND" in first["warnings"][0]
        other = [w for w in first["warnings"] if w.startswith("the header names the sender")]
        if code == "14":
            assert "PromulgationInfo Thái Bình, 2026/12/01" in first["warnings"][0]
            assert other == [
                "the header names the sender Ủy ban nhân dân tỉnh Thái Bình; "
                "the signer's certificate names Ủy ban nhân dân tỉnh Nam Định"
            ]
        else:
            assert "PromulgationInfo Nam Định, 2026/12/01" in first["warnings"][0]
            assert other == []


def test_one_tampered_attachment_is_failed_by_name(  # type: ignore[no-untyped-def]
    sign, verify, pdfs, signkit: Runner, trust: Path, tmp_path: Path
) -> None:
    out = signed_one(sign, pdfs, tmp_path)
    # a byte of the appendix changed inside its signed range, re-encoded: the
    # envelope signature breaks too (it covers the whole document)
    data = out.read_bytes()
    appendix = pdfs["appendix"]
    i = appendix.index(b"stream") + 20
    bad = appendix[:i] + bytes([appendix[i] ^ 1]) + appendix[i + 1 :]
    tampered = data.replace(base64.b64encode(appendix), base64.b64encode(bad))
    assert tampered != data
    target = tmp_path / "tampered.edxml"
    target.write_bytes(tampered)
    assert "Signature is Invalid." in pdfsig_ok(bad, tmp_path) or "Digest Mismatch" in (
        pdfsig_ok(bad, tmp_path)
    )
    assert xmlsec_verify(target, tmp_path).returncode != 0
    proc, result = verify(str(target))
    assert proc.returncode == 1
    v = result["documents"][0]["verdict"]
    assert v["indication"] == "FAILED"
    by = {s["attachment"]: s for s in v["signatures"] if s["attachment"]}
    assert by["Phụ lục 1.pdf"]["indication"] == "FAILED"
    assert by["12-QĐ-UBND.pdf"]["indication"] == "PASSED"
    assert v["signatures"][0]["indication"] == "FAILED"  # the envelope
    # the verdict lines name the attachment on a FAILED line
    lines = signkit("verify", str(target), "--trust", str(trust), "--no-audit")
    assert lines.returncode == 1 and "Traceback" not in lines.stderr
    assert any(
        "Phụ lục 1.pdf" in line and "FAILED" in line for line in lines.stdout.splitlines()
    ), lines.stdout
    # a FAILED package's attachments are not extracted
    proc = verify_raw(verify, target, tmp_path / "received")
    assert proc.returncode == 1
    assert "attachments not extracted (the package is FAILED)" in proc.stderr
    assert not (tmp_path / "received").exists()


def test_envelope_altered_after_signing_is_failed(sign, verify, pdfs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = signed_one(sign, pdfs, tmp_path)
    altered = out.read_bytes().replace(
        b"<edXML:CodeNumber>12</edXML:CodeNumber>", b"<edXML:CodeNumber>21</edXML:CodeNumber>"
    )
    assert altered != out.read_bytes()
    target = tmp_path / "altered.edxml"
    target.write_bytes(altered)
    assert xmlsec_verify(target, tmp_path).returncode != 0
    proc, result = verify(str(target))
    assert proc.returncode == 1
    v = result["documents"][0]["verdict"]
    assert v["indication"] == "FAILED"
    assert v["signatures"][0]["name"].startswith("edXMLHeader")
    assert v["signatures"][0]["sub_indication"] == "HASH_FAILURE"


def test_not_an_edxml_envelope_is_refused_by_the_preset(sign, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "congvan.xml"
    other.write_bytes((FIXTURES / "xml" / "generic.xml").read_bytes())
    proc = sign(str(other), "-o", str(tmp_path / "out.xml"))
    # a document that cannot be signed: exit 1, as for any document of a batch
    assert proc.returncode == 1, proc.stderr
    assert "not edXML" in proc.stderr and "Traceback" not in proc.stderr
    wrong_ns = tmp_path / "wrong-ns.edxml"
    wrong_ns.write_bytes(
        build_package([Item("a.pdf", b"%PDF-1.4\n")]).replace(
            b'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"', b'xmlns="urn:other"'
        )
    )
    proc = sign(str(wrong_ns), "-o", str(tmp_path / "out2.edxml"))
    assert proc.returncode == 1, proc.stderr
    assert "not http://www.mic.gov.vn/TBT/QCVN_102_2016" in proc.stderr
    assert not (tmp_path / "out.xml").exists() and not (tmp_path / "out2.edxml").exists()


def test_extract_attachments_writes_what_was_attached(sign, verify, pdfs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = signed_one(sign, pdfs, tmp_path)
    target = tmp_path / "received"
    proc, _ = verify(str(out), "--extract-attachments", str(target))
    assert proc.returncode == 0, proc.stderr
    folder = target / "qd-12"
    assert sorted(p.name for p in folder.iterdir()) == ["12-QĐ-UBND.pdf", "Phụ lục 1.pdf"]
    assert (folder / "12-QĐ-UBND.pdf").read_bytes() == pdfs["decision"]
    assert "Signature is Valid." in pdfsig_ok((folder / "Phụ lục 1.pdf").read_bytes(), tmp_path)
    # every file written is in the audit log, announced before and hashed after
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    kinds = [r["type"] for r in records if r["type"].startswith("extract")]
    assert kinds == ["extract-intent", "extract-result"]
    result = next(r for r in records if r["type"] == "extract-result")
    assert {Path(o["output"]).name: o["sha256"] for o in result["outputs"]} == {
        "12-QĐ-UBND.pdf": hashlib.sha256(pdfs["decision"]).hexdigest(),
        "Phụ lục 1.pdf": hashlib.sha256(pdfs["appendix"]).hexdigest(),
    }
    # without the option nothing is written anywhere
    before = sorted(p.name for p in tmp_path.rglob("*"))
    proc, _ = verify(str(out))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    # a second extraction into the same folder overwrites nothing: exit 3, one line
    proc = verify_raw(verify, out, target)
    assert proc.returncode == 3 and "exists; not overwritten" in proc.stderr, proc.stderr


def verify_raw(verify: Verify, out: Path, target: Path) -> Any:
    proc, _ = verify(str(out), "--extract-attachments", str(target))
    return proc


def test_a_signature_wrapping_the_header_is_failed(sign, verify, pdfs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The signed header moved into the signature's ds:Object, a forged one in its place."""
    out = signed_one(sign, pdfs, tmp_path)
    root = etree.fromstring(out.read_bytes())
    envelope = root.find(f"{{{EDXML}}}edXMLEnvelope")
    header = envelope.find(f"{{{EDXML}}}edXMLHeader")
    sig = header.find(f"{{{DS}}}Signature")
    forged = etree.fromstring(etree.tostring(header))
    forged.find(f".//{{{EDXML}}}CodeNumber").text = "99"
    forged.remove(forged.find(f"{{{DS}}}Signature"))
    header.remove(sig)
    obj = etree.SubElement(sig, f"{{{DS}}}Object")
    obj.append(header)
    forged.append(sig)
    envelope.insert(0, forged)
    target = tmp_path / "wrapped.edxml"
    target.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    assert xmlsec_verify(target, tmp_path).returncode != 0
    proc, result = verify(str(target))
    assert proc.returncode == 1
    v = result["documents"][0]["verdict"]
    assert v["indication"] == "FAILED"
    assert v["signatures"][0]["name"].startswith("edXMLHeader")
    assert v["signatures"][0]["indication"] == "FAILED"


def test_a_signed_xml_attachment_is_judged_like_a_document(
    sign, verify, pdfs, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """An e-invoice signed by xmlsec1 travels beside the decision: its signature is
    verified as `signkit verify` would verify the file on its own."""
    from support.xmldocs import xmlsec_sign
    from support.xmldocs import xmlsec_verify as xmlsec_invoice_ok

    invoice = xmlsec_sign(tmp_path / "invoice", "signer-vn")
    assert xmlsec_invoice_ok(invoice, tmp_path / "invoice")
    src = tmp_path / "in" / "hd.edxml"
    src.parent.mkdir()
    src.write_bytes(
        build_package(
            [
                Item("12-QĐ-UBND.pdf", pdfs["decision"]),
                Item("hoa-don.xml", invoice.read_bytes(), "application/xml"),
            ]
        )
    )
    out = tmp_path / "hd-signed.edxml"
    assert sign(str(src), "-o", str(out)).returncode == 0
    proc, result = verify(str(out))
    assert proc.returncode == 0, proc.stderr
    lines = result["documents"][0]["verdict"]["signatures"]
    invoice_lines = [s for s in lines if s["attachment"] == "hoa-don.xml"]
    assert len(invoice_lines) == 1 and invoice_lines[0]["indication"] == "PASSED"
    # the same invoice with its amount changed inside the package: that line FAILED
    data = invoice.read_bytes()
    assert data.count(b"<TgTien>1000000</TgTien>") == 1
    changed = data.replace(b"<TgTien>1000000</TgTien>", b"<TgTien>9000000</TgTien>")
    src.write_bytes(
        build_package([Item("hoa-don.xml", changed, "application/xml")], Header(code_number="13"))
    )
    out2 = tmp_path / "hd2-signed.edxml"
    assert sign(str(src), "-o", str(out2)).returncode == 0
    proc, result = verify(str(out2))
    assert proc.returncode == 1
    (line,) = [s for s in result["documents"][0]["verdict"]["signatures"] if s["attachment"]]
    assert line["name"].startswith("hoa-don.xml") and line["indication"] == "FAILED"


def test_hostile_packages_get_a_line_each_never_a_bug(verify, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the CLI and its worker processes: each package gets a verdict or an
    input error on its own row; exit 1, never 70, no traceback."""
    folder = tmp_path / "hostile"
    folder.mkdir()
    plain = build_package([Item("a.pdf", b"%PDF-1.4\n")])
    (folder / "wrong-ns.edxml").write_bytes(
        plain.replace(b'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"', b'xmlns="urn:x"')
    )
    (folder / "dtd.edxml").write_bytes(
        plain.replace(b"<edXML ", b'<!DOCTYPE edXML [<!ENTITY e "x">]>\n<edXML ', 1)
    )
    (folder / "huge.edxml").write_bytes(build_package([Item("big.pdf", b"\0" * (33 << 20))]))
    (folder / "dup.edxml").write_bytes(
        build_package([Item("QĐ.pdf", b"%PDF-1.4\n"), Item("qđ.pdf", b"%PDF-1.4\n")])
    )
    (folder / "two-headers.edxml").write_bytes(
        plain.replace(b"</edXML:edXMLHeader>", b"</edXML:edXMLHeader><edXML:edXMLHeader/>", 1)
    )
    proc, result = verify(str(folder))
    assert proc.returncode == 1
    rows = {Path(d["input"]).name: d for d in result["documents"]}
    assert len(rows) == 5
    assert "namespace urn:x" in rows["wrong-ns.edxml"]["error_message"]
    assert rows["dtd.edxml"]["status"] == "failed"
    huge = rows["huge.edxml"]["verdict"]
    assert huge["indication"] == "FAILED"
    assert any(
        s["detail"] == "attachment big.pdf decodes to more than 32 MiB" for s in huge["signatures"]
    )
    assert "refusing an ambiguous envelope" in rows["two-headers.edxml"]["error_message"]
    dup = rows["dup.edxml"]["verdict"]
    assert dup["indication"] == "FAILED"
    assert any("two attachments are named" in (s["detail"] or "") for s in dup["signatures"])


def openssl_cms(data: Path, out: Path, *, attached: bool) -> bytes:
    """A CAdES signature made by another signer (openssl cms), DER."""
    from asn1crypto import pem

    keys = FIXTURES / "pki" / "keys"
    signer = out.parent / "signer.pem"
    signer.write_bytes(pem.armor("CERTIFICATE", pki_certificate("signer-rsa2048")))
    interm = out.parent / "interm.pem"
    interm.write_bytes(pem.armor("CERTIFICATE", pki_certificate("interm-ca")))
    subprocess.run(
        [
            "openssl", "cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
            *(["-nodetach"] if attached else []),
            "-in", str(data), "-signer", str(signer), "-inkey",
            str(keys / "signer-rsa2048.key.pem"), "-certfile", str(interm), "-out", str(out),
        ],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def test_cms_attachments_are_verified_in_memory(sign, verify, pdfs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A spreadsheet with its detached .p7s and a .p7m with its content inside,
    both made by openssl, travel in the package: each signature is judged as
    `signkit verify` judges the file on its own, the detached one against the
    attachment it names; the data file needs no line of its own."""
    work = tmp_path / "cms"
    work.mkdir()
    sheet = work / "bang-luong.xlsx"
    sheet.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)
    p7s = openssl_cms(sheet, work / "bang-luong.xlsx.p7s", attached=False)
    p7m = openssl_cms(sheet, work / "to-trinh.xlsx.p7m", attached=True)
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def signed_package(name: str, items: list[Item]) -> dict[str, Any]:
        src = tmp_path / "in" / f"{name}.edxml"
        src.parent.mkdir(exist_ok=True)
        src.write_bytes(build_package(items))
        out = tmp_path / "out" / f"{name}.edxml"
        out.parent.mkdir(exist_ok=True)
        proc = sign(str(src), "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        before = sorted(p.name for p in tmp_path.rglob("*"))
        verdict = verify(str(out))[1]["documents"][0]["verdict"]
        # nothing decoded is written anywhere (the audit log is the only new file)
        after = sorted(p.name for p in tmp_path.rglob("*"))
        assert set(after) - set(before) <= {"audit.jsonl", "audit.jsonl.lock"}
        return verdict

    good = signed_package(
        "cms-good",
        [
            Item("12-QĐ-UBND.pdf", pdfs["decision"]),
            Item("bang-luong.xlsx", sheet.read_bytes(), xlsx),
            Item("bang-luong.xlsx.p7s", p7s, "application/pkcs7-signature"),
            Item("to-trinh.xlsx.p7m", p7m, "application/octet-stream"),
        ],
    )
    assert good["indication"] == "PASSED", good
    by_attachment = {s["attachment"]: s for s in good["signatures"] if s["attachment"]}
    assert set(by_attachment) == {"12-QĐ-UBND.pdf", "bang-luong.xlsx.p7s", "to-trinh.xlsx.p7m"}
    detached = by_attachment["bang-luong.xlsx.p7s"]
    assert detached["coverage"] == "file:bang-luong.xlsx"
    assert detached["signer_subject"]
    assert detached["signer_subject"] == by_attachment["to-trinh.xlsx.p7m"]["signer_subject"]
    assert by_attachment["to-trinh.xlsx.p7m"]["coverage"] == "attached-content"

    changed = bytearray(sheet.read_bytes())
    changed[100] ^= 1
    tampered = signed_package(
        "cms-tampered",
        [
            Item("bang-luong.xlsx", bytes(changed), xlsx),
            Item("bang-luong.xlsx.p7s", p7s, "application/pkcs7-signature"),
        ],
    )
    assert tampered["indication"] == "FAILED"
    (line,) = [s for s in tampered["signatures"] if s["attachment"]]
    assert line["name"].startswith("bang-luong.xlsx.p7s")
    assert (line["indication"], line["sub_indication"]) == ("FAILED", "HASH_FAILURE")

    alone = signed_package(
        "cms-alone", [Item("bang-luong.xlsx.p7s", p7s, "application/pkcs7-signature")]
    )
    (line,) = [s for s in alone["signatures"] if s["attachment"]]
    assert (line["indication"], line["sub_indication"]) == (
        "INDETERMINATE",
        "SIGNED_DATA_NOT_FOUND",
    )
