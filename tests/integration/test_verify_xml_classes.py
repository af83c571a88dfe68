"""`signkit verify` on the classes of XML signature other producers make
(fixtures/xml/verify/, made by fixtures/make_xml_signed.py with xmlsec1), each
against xmlsec1's own verdict: enveloping, xml:* attributes of ancestors,
nodes outside the root, transforms, manifests, several signatures,
counter-signatures, XAdES 1.2.2, DTD-declared Ids, key values, wrapping by
namespace and by Type, malformed signatures and the size bound."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.infra import FIXTURES, PkiServices, pki_certificate
from support.runner import Runner
from support.xmldocs import move_to_wrapper, xmlsec_sign

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

FIXTURES = FIXTURES / "xml" / "verify"
DS = "http://www.w3.org/2000/09/xmldsig#"
ID_ATTRS = [
    "--id-attr:Id", "DLHDon",
    "--id-attr:Id", "noiDung",
    "--id-attr:Id", "urn:example:hd:DLHDon",
    "--id-attr:Id", "http://uri.etsi.org/01903/v1.2.2#:SignedProperties",
    "--id-attr:Id", f"{DS}:SignatureValue",
]  # fmt: skip


def xmlsec1_ok(path: Path, tmp: Path) -> bool:
    """xmlsec1's verdict with the test root trusted (manifests are the application's)."""
    root, interm = tmp / "root.der", tmp / "interm.der"
    root.write_bytes(pki_certificate("root-ca"))
    interm.write_bytes(pki_certificate("interm-ca"))
    proc = subprocess.run(
        ["xmlsec1", "--verify", "--trusted-der", str(root), "--untrusted-der", str(interm),
         "--ignore-manifests", *ID_ATTRS, str(path)],
        capture_output=True, text=True, check=False, cwd=path.parent,
    )  # fmt: skip
    return proc.returncode == 0 and proc.stderr.startswith("OK")


@pytest.fixture
def verify(signkit: Runner, pki: PkiServices, trust: Path) -> Any:
    def run(path: Path) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
        proc = signkit(
            "verify", str(path), "--trust", str(trust), "--offline", "--revocation", "off",
            "--json", "--no-audit",
        )  # fmt: skip
        assert proc.stdout and "Traceback" not in proc.stderr, proc.stderr
        doc = json.loads(proc.stdout)["documents"][0]
        verdict = doc["verdict"] or {}
        return proc.returncode, verdict.get("signatures", []), doc

    return run


def copy_fixture(tmp: Path, name: str) -> Path:
    dst = tmp / Path(name).name
    shutil.copy(FIXTURES / name, dst)
    return dst


@pytest.mark.parametrize(
    ("name", "coverage"),
    [
        ("enveloping.xml", ["the ds:Object #obj, enveloping"]),
        ("base64-object.xml", ["the ds:Object #file, enveloping"]),
        ("ancestor-xml-attributes.xml", ["element:noiDung#nd (/baoCao/phan/noiDung)"]),
        ("outside-root.xml", ["entire-document"]),
        (
            "exclusive-prefix-list.xml",
            ["element:DLHDon#data (/HDon/DLHDon) in namespace urn:example:hd"],
        ),
        ("c14n11-with-comments.xml", ["element:DLHDon#data (/HDon/DLHDon), entire-document"]),
        (
            "xpath-filters.xml",
            ["entire-document (XPath-filtered), entire-document (XPath-filtered)"],
        ),
        ("dtd-ids.xml", ["element:vanBan#vb-1 (/hoSo/vanBan)"]),
        ("two-signatures.xml", ["element:DLHDon#data (/HDon/DLHDon)", "entire-document"]),
        (
            "counter-signature.xml",
            [
                "element:DLHDon#data (/HDon/DLHDon)",
                "the SignatureValue of signature #sig (counter-signature)",
            ],
        ),
        ("xades-122-signing-certificate-v1.xml", ["element:DLHDon#data (/HDon/DLHDon)"]),
        ("manifest.xml", ["signature's own Manifest"]),
    ],
)
def test_conformant_signatures_pass_as_xmlsec1_says(
    verify: Any, tmp_path: Path, name: str, coverage: list[str]
) -> None:
    """Regression: enveloping signatures were WRAPPED_SIGNED_ELEMENT; C14N 1.1, XPath
    Filter 2.0, the base64 transform, DTD-declared Ids, XAdES 1.2.2 were refused."""
    path = copy_fixture(tmp_path, name)
    if name == "manifest.xml":
        shutil.copy(FIXTURES / "data.txt", tmp_path / "data.txt")
    assert xmlsec1_ok(path, tmp_path)
    code, sigs, _ = verify(path)
    assert code == 0, sigs
    assert [s["indication"] for s in sigs] == ["PASSED"] * len(coverage)
    assert [s["coverage"] for s in sigs] == coverage


def test_xades_signing_certificate_v1_names_the_signer_by_sha1(verify: Any, tmp_path: Path) -> None:
    """The v1 SigningCertificate's SHA-1 digest identifies the certificate: it is
    no signature algorithm, so nothing is weak here."""
    code, (sig,), _ = verify(copy_fixture(tmp_path, "xades-122-signing-certificate-v1.xml"))
    assert code == 0 and sig["level"] == "B-B" and sig["weak_algorithms"] == []
    assert sig["claimed_signing_time"] == "2026-03-12T09:41:07+07:00"


def test_manifest_references_are_reported_not_required(verify: Any, tmp_path: Path) -> None:
    path = copy_fixture(tmp_path, "manifest.xml")
    shutil.copy(FIXTURES / "data.txt", tmp_path / "data.txt")
    _, (sig,), _ = verify(path)
    (line,) = [w for w in sig["warnings"] if w.startswith("ds:Manifest references")]
    assert "data.txt: matches" in line and "missing.pdf: the referenced file" in line
    (tmp_path / "data.txt").write_text("changed")
    code, (sig,), _ = verify(path)
    assert code == 0 and "data.txt: does not match its digest" in " ".join(sig["warnings"])


def test_ancestor_xml_attributes_belong_to_the_signed_element(verify: Any, tmp_path: Path) -> None:
    """Regression: xml:lang/space/base added to an ancestor after signing gave PASSED
    (inclusive C14N carries them onto the signed element; xmlsec1 refuses)."""
    path = copy_fixture(tmp_path, "ancestor-xml-attributes.xml")
    original = path.read_bytes()
    # under the signed element's parent only: its digest fails
    path.write_bytes(
        original.replace(
            b'<phan xml:space="preserve">', b'<phan xml:space="preserve" xml:base="x/">'
        )
    )
    assert not xmlsec1_ok(path, tmp_path)
    code, (sig,), _ = verify(path)
    assert (code, sig["indication"], sig["sub_indication"]) == (1, "FAILED", "HASH_FAILURE")
    # on the root, above the Signature too: SignedInfo's canonical form changes as well
    for change in (
        (b'<baoCao xml:lang="vi">', b'<baoCao xml:lang="en">'),
        (b'<baoCao xml:lang="vi">', b'<baoCao xml:lang="vi" xml:space="default">'),
    ):
        path.write_bytes(original.replace(*change))
        assert not xmlsec1_ok(path, tmp_path), change
        code, (sig,), _ = verify(path)
        assert (code, sig["indication"], sig["sub_indication"]) == (
            1, "FAILED", "SIG_CRYPTO_FAILURE",
        )  # fmt: skip


def test_a_whole_document_reference_covers_pis_outside_the_root_not_comments(
    verify: Any, tmp_path: Path
) -> None:
    path = copy_fixture(tmp_path, "outside-root.xml")
    original = path.read_bytes()
    path.write_bytes(original.replace(b"<!-- ghi ch", b"<!-- da sua ghi ch"))
    assert xmlsec1_ok(path, tmp_path) and verify(path)[0] == 0
    for change in ((b"hoa-don.xsl", b"gia-mao.xsl"), (b"<?after-root x?>", b"<?after-root y?>")):
        path.write_bytes(original.replace(*change))
        assert not xmlsec1_ok(path, tmp_path)
        code, (sig,), _ = verify(path)
        assert (code, sig["sub_indication"]) == (1, "HASH_FAILURE")


def test_each_of_several_signatures_is_judged(verify: Any, tmp_path: Path) -> None:
    path = copy_fixture(tmp_path, "two-signatures.xml")
    # outside the seller's element, inside the buyer's whole document
    path.write_bytes(path.read_bytes().replace(b"<HDon>", b'<HDon so="2">', 1))
    code, sigs, doc = verify(path)
    assert code == 1
    assert [(s["name"], s["indication"]) for s in sigs] == [
        ("seller", "PASSED"),
        ("buyer", "FAILED"),
    ]
    assert doc["verdict"]["sentence"].startswith("signature 2 of 2: ")


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("counter-signature-over-content.xml", "a counter-signature that does not sign"),
        ("typed-object-over-content.xml", "is typed Object but names a <DLHDon> at /HDon/DLHDon"),
    ],
)
def test_signatures_that_claim_what_they_do_not_sign_fail(
    verify: Any, tmp_path: Path, name: str, detail: str
) -> None:
    """The maths hold (xmlsec1 says OK), but the signature presents as a
    counter-signature or a ds:Object what is document content."""
    path = copy_fixture(tmp_path, name)
    assert xmlsec1_ok(path, tmp_path)
    code, sigs, _ = verify(path)
    assert code == 1
    bad = [s for s in sigs if s["indication"] == "FAILED"]
    assert [s["sub_indication"] for s in bad] == ["WRAPPED_SIGNED_ELEMENT"]
    assert detail in bad[0]["detail"]


def test_a_twin_in_another_namespace_is_signature_wrapping(verify: Any, tmp_path: Path) -> None:
    """Regression: a forged <DLHDon xmlns="urn:evil"> where the invoice is read, the
    signed original moved under an extension element, gave PASSED (the twin check
    compared exact names only)."""
    from lxml import etree

    signed = xmlsec_sign(tmp_path / "s", "signer-rsa2048", prefixed=True, exclusive=True)
    moved = move_to_wrapper(signed, tmp_path / "moved.xml")
    root = etree.parse(str(moved)).getroot()
    forged = root[0]
    evil = etree.Element("{urn:evil}DLHDon", nsmap={None: "urn:evil"})
    evil.extend(list(forged))
    root.replace(forged, evil)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    assert xmlsec1_ok(bad, tmp_path)  # the maths still hold
    code, (sig,), _ = verify(bad)
    assert (code, sig["sub_indication"]) == (1, "WRAPPED_SIGNED_ELEMENT")
    assert "another <DLHDon> in namespace urn:evil at /HDon/DLHDon" in sig["detail"]


def test_a_key_value_without_certificate_is_indeterminate(verify: Any, tmp_path: Path) -> None:
    code, (sig,), _ = verify(copy_fixture(tmp_path, "key-value-only.xml"))
    assert (code, sig["indication"], sig["sub_indication"]) == (
        6, "INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND",
    )  # fmt: skip
    assert sig["intact"] and sig["signature_valid"]


@pytest.mark.parametrize(
    ("name", "code", "sub", "detail"),
    [
        ("empty-signature-value.xml", 1, "FORMAT_FAILURE", "the SignatureValue is empty"),
        ("signature-value-not-base64.xml", 1, "FORMAT_FAILURE", "the SignatureValue is not base64"),
        ("no-signed-info.xml", 1, "FORMAT_FAILURE", "the signature has no SignedInfo"),
        ("no-key-info.xml", 1, "FORMAT_FAILURE", "no key to check the signature with"),
        ("digest-value-not-base64.xml", 1, "SIG_CRYPTO_FAILURE", "does not verify with any key"),
        ("reference-to-nothing.xml", 1, "SIG_CRYPTO_FAILURE", "does not verify with any key"),
        ("unknown-signature-method.xml", 6, "CRYPTO_CONSTRAINTS_FAILURE", "urn:unknown"),
    ],
)
def test_malformed_signatures_get_a_verdict_not_an_internal_error(
    verify: Any, tmp_path: Path, name: str, code: int, sub: str, detail: str
) -> None:
    """Regression: an empty <SignatureValue/> ended in exit 70 'internal error'."""
    got, (sig,), _ = verify(copy_fixture(tmp_path, f"hostile-signatures/{name}"))
    assert (got, sig["sub_indication"]) == (code, sub)
    assert detail in sig["detail"] and sig["sentence"]


def test_verify_reads_no_document_over_the_parser_bound(signkit: Runner, tmp_path: Path) -> None:
    """Regression: verify had no size bound for XML (73 MB took 2.4 GB)."""
    big = tmp_path / "big.xml"
    with big.open("wb") as fh:
        fh.write(b"<r>")
        fh.write(b"<a>x</a>" * ((65 << 20) // 8))
        fh.write(b"</r>")
    proc = signkit("verify", str(big), "--json", "--no-audit")
    doc = json.loads(proc.stdout)["documents"][0]
    # an unreadable document: exit 1 for the run (README), input error 3 for the file
    assert proc.returncode == 1 and doc["error_code"] == 3
    assert "document larger than 64 MiB" in doc["error_message"]
