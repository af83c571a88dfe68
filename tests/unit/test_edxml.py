"""edXML packages that are not what they claim: a clear verdict or input error,
never a bug; attachments bounded, names sanitised, nothing written outside DIR.
Offline, no token (unsigned packages from fixtures/make_edxml.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signkit.errors import InputFormatError, OutputError
from signkit.formats.edxml import (
    Budget,
    decode,
    extract_attachments,
    manifest_problems,
    read_package,
    safe_name,
)
from signkit.formats.xml.parse import parse
from signkit.verify.edxml import verify_edxml
from signkit.verify.policy import VerifyPolicy
from support.infra import FIXTURES

sys.path.insert(0, str(FIXTURES))
from make_edxml import Header, Item, build_package

OFFLINE = VerifyPolicy(offline=True, revocation="off")


def write(tmp: Path, data: bytes, name: str = "p.edxml") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def two(names: tuple[str, str] = ("a.pdf", "b.pdf")) -> bytes:
    return build_package([Item(names[0], b"%PDF-1.4\nnot much"), Item(names[1], b"<x/>")])


def test_header_facts_and_attachments_are_read() -> None:
    data = build_package([Item("12-QĐ-UBND.pdf", b"%PDF-1.4\n")], Header(code_number="7"))
    pkg = read_package(parse(data, "p"))
    assert pkg.header.code == "7/QĐ-UBND"
    assert "PromulgationInfo Nam Định, 2026/12/01" in pkg.header.summary()
    assert [a.name for a in pkg.attachments] == ["12-QĐ-UBND.pdf"]
    assert decode(pkg.attachments[0], Budget(), "p") == b"%PDF-1.4\n"
    assert manifest_problems(pkg) == []


def test_an_unsigned_package_is_failed_with_one_line_per_attachment(tmp_path: Path) -> None:
    verdict = verify_edxml(write(tmp_path, two()), OFFLINE)
    assert verdict.format == "edxml" and verdict.indication.value == "FAILED"
    lines = {s.name: s for s in verdict.signatures}
    assert lines["edXMLHeader"].detail == "the envelope carries no XML signature in edXMLHeader"
    assert lines["a.pdf"].attachment == "a.pdf" and "malformed PDF" in (lines["a.pdf"].detail or "")
    assert lines["b.pdf"].detail == "the attachment carries no signature"
    assert [s.index for s in verdict.signatures] == list(range(len(verdict.signatures)))


def test_wrong_namespace_and_wrong_root_are_refused(tmp_path: Path) -> None:
    wrong = two().replace(b'xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"', b'xmlns="urn:x"')
    with pytest.raises(InputFormatError, match=r"not an edXML envelope: .* namespace urn:x"):
        verify_edxml(write(tmp_path, wrong), OFFLINE)
    with pytest.raises(InputFormatError, match="no edXMLEnvelope/edXMLBody"):
        verify_edxml(write(tmp_path, two().replace(b"edXMLBody", b"Other")), OFFLINE)


def test_a_dtd_with_entities_is_refused_before_parsing(tmp_path: Path) -> None:
    bomb = two().replace(
        b"<edXML ",
        b'<!DOCTYPE edXML [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>\n<edXML ',
        1,
    )
    with pytest.raises(InputFormatError):
        verify_edxml(write(tmp_path, bomb), OFFLINE)


def test_attachments_over_the_parsers_text_limit_are_read(tmp_path: Path) -> None:
    """A scanned appendix of 9 MiB is 12 MB of base64, over libxml2's 10 MB
    text-node limit: it is decoded and judged, not refused."""
    scan = b"%PDF-1.4\n" + bytes(range(256)) * (9 << 12)
    verdict = verify_edxml(write(tmp_path, build_package([Item("phu-luc.pdf", scan)])), OFFLINE)
    line = next(s for s in verdict.signatures if s.attachment == "phu-luc.pdf")
    assert "malformed PDF" in (line.detail or "")


def test_attachments_over_the_budget_are_a_line_not_decoded(tmp_path: Path) -> None:
    huge = build_package([Item("big.pdf", b"\0" * (33 << 20))])
    verdict = verify_edxml(write(tmp_path, huge), OFFLINE)
    line = next(s for s in verdict.signatures if s.attachment == "big.pdf")
    assert line.indication.value == "FAILED"
    assert line.detail == "attachment big.pdf decodes to more than 32 MiB"
    # the decoded-size budget is checked before anything is decoded
    pkg = read_package(parse(two(), "p"))
    with pytest.raises(InputFormatError, match="in all"):
        decode(pkg.attachments[0], Budget(total=4), "p")


def test_decoding_makes_no_second_copy_of_the_text() -> None:
    """Decoded a chunk at a time into one buffer: beside the text lxml hands
    out, the peak is about the decoded bytes, also for base64 wrapped in
    76-character lines (splitting it into lines once cost five times the
    attachment)."""
    import base64

    from support.memory import traced_peak

    data = bytes(range(256)) * (1 << 15)  # 8 MiB
    flat = base64.b64encode(data)
    package = build_package([Item("a.pdf", data)]).replace(flat, base64.encodebytes(data))
    pkg = read_package(parse(package, "p"))
    text = pkg.attachments[0].encoded.text  # type: ignore[union-attr]
    assert text is not None and len(text) > 10 << 20
    decoded: list[bytes] = []
    peak = traced_peak(lambda: decoded.append(decode(pkg.attachments[0], Budget(), "p")))
    assert decoded == [data]
    assert peak < len(text) + 1.25 * len(data), (peak, len(text), len(data))


@pytest.mark.parametrize("cut", [1, 4095, 4096, 4097, (1 << 18) - 1, 1 << 18, (1 << 18) + 3])
def test_chunked_decoding_is_strict_at_every_boundary(cut: int) -> None:
    """Padding in the middle, stray characters and a short tail are refused
    wherever the chunk boundaries fall; wrapped lines are accepted."""
    import base64

    from signkit.formats import edxml

    data = bytes(range(256)) * 5000
    good = base64.encodebytes(data).decode()  # 76-character lines
    pkg = read_package(parse(build_package([Item("a.pdf", b"x")]), "p"))
    att = pkg.attachments[0]
    assert att.encoded is not None
    att.encoded.text = good
    assert decode(att, Budget(), "p") == data
    plain = good.replace("\n", "")
    for bad in (plain[:cut] + "=" + plain[cut:], plain[:cut] + "!" + plain[cut:], plain[:-1]):
        att.encoded.text = bad
        with pytest.raises(InputFormatError, match="is not base64"):
            decode(att, Budget(), "p")
    assert edxml.DECODE_CHUNK < len(good) // 4


def test_bad_base64_is_a_failed_line_naming_the_attachment(tmp_path: Path) -> None:
    data = two()
    assert b"PHgvPg==" in data  # <x/>
    data = data.replace(b"PHgvPg==", b"PH$vPg==")
    verdict = verify_edxml(write(tmp_path, data), OFFLINE)
    line = next(s for s in verdict.signatures if s.attachment == "b.pdf")
    assert line.indication.value == "FAILED" and line.detail == "attachment b.pdf is not base64"


def test_duplicate_names_and_manifest_mismatch_are_failed(tmp_path: Path) -> None:
    verdict = verify_edxml(write(tmp_path, two(("QĐ.pdf", "qđ.pdf"))), OFFLINE)
    manifest = next(s for s in verdict.signatures if s.name == "edXMLManifest")
    assert manifest.indication.value == "FAILED"
    assert "two attachments are named qđ.pdf" in (manifest.detail or "")
    # one manifest reference removed: count and name disagree
    data = two()
    start = data.index(b"<edXML:Reference>")
    end = data.index(b"</edXML:Reference>") + len(b"</edXML:Reference>")
    pkg = read_package(parse(data[:start] + data[end:], "p"))
    problems = manifest_problems(pkg)
    assert "the edXMLManifest lists 1 attachment(s), the package carries 2" in problems
    assert "attachment a.pdf is not in the edXMLManifest" in problems


def test_a_package_inside_a_package_is_not_opened(tmp_path: Path) -> None:
    inner = two()
    verdict = verify_edxml(write(tmp_path, build_package([Item("inner.edxml", inner)])), OFFLINE)
    line = next(s for s in verdict.signatures if s.attachment == "inner.edxml")
    assert line.indication.value == "INDETERMINATE"
    assert line.detail == "an edXML package inside the package is not opened"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(0, 99))
def test_safe_names_stay_in_the_directory(name: str, index: int) -> None:
    safe = safe_name(name, index)
    assert safe and "/" not in safe and "\\" not in safe and "\0" not in safe
    assert not safe.startswith(".") and len(safe) <= 120
    assert Path("/d", safe).parent == Path("/d")


def test_extraction_sanitises_and_refuses_collisions(tmp_path: Path) -> None:
    evil = build_package([Item("../../etc/passwd", b"x"), Item("..\\..\\boot.ini", b"y")])
    written = extract_attachments(read_package(parse(evil, "p")), tmp_path / "out")
    assert [p.name for p in written] == ["passwd", "boot.ini"]
    assert all(p.parent == tmp_path / "out" for p in written)
    assert (tmp_path / "out" / "passwd").read_bytes() == b"x"
    # again: the files exist, nothing is overwritten
    with pytest.raises(OutputError, match="exists"):
        extract_attachments(read_package(parse(evil, "p")), tmp_path / "out")
    # two names that become one file: refused before anything is written
    same = build_package([Item("a/QĐ.pdf", b"1"), Item("b/qđ.pdf", b"2")])
    with pytest.raises(OutputError, match="two attachments would be written as"):
        extract_attachments(read_package(parse(same, "p")), tmp_path / "same")
    assert not (tmp_path / "same").exists()


def test_a_signature_outside_the_xmldsig_namespace_is_named(tmp_path: Path) -> None:
    """The SDK sample writes <Signature> with no namespace declaration under the
    edXML default namespace: not an XML signature, and the verdict says why."""
    data = two().replace(
        b"</edXML:TraceHeaderList>",
        b"</edXML:TraceHeaderList><Signature><SignedInfo/><SignatureValue/></Signature>",
        1,
    )
    verdict = verify_edxml(write(tmp_path, data), OFFLINE)
    line = verdict.signatures[0]
    assert line.name == "edXMLHeader" and line.indication.value == "FAILED"
    assert line.detail == (
        "the Signature in edXMLHeader is not in the XMLDSig namespace "
        "(http://www.w3.org/2000/09/xmldsig#): it is not an XML signature"
    )


def test_an_envelope_signature_over_less_than_the_package_is_said(tmp_path: Path) -> None:
    """A signature in edXMLHeader that references one element leaves the attachments
    out; another signature elsewhere is not the sender's. Both are said."""
    ds = '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>{ref}</SignedInfo>'
    ds += "<SignatureValue>AAAA</SignatureValue></Signature>"
    partial = ds.format(ref='<Reference URI="#x"><DigestValue>AAAA</DigestValue></Reference>')
    data = two().replace(
        b"</edXML:TraceHeaderList>", b"</edXML:TraceHeaderList>" + partial.encode(), 1
    )
    data = data.replace(
        b"</AttachmentEncoded>", ds.format(ref="").encode() + b"</AttachmentEncoded>"
    )
    verdict = verify_edxml(write(tmp_path, data), OFFLINE)
    envelope = verdict.signatures[0]
    assert envelope.name == "edXMLHeader" and envelope.indication.value == "FAILED"
    assert any("does not cover the whole package" in w for w in envelope.warnings)
    assert any(w.startswith("1 other XML signature(s)") for w in envelope.warnings)


def test_a_package_behind_a_long_prolog_is_still_a_package(tmp_path: Path) -> None:
    """The first bytes decide only a hint: a comment longer than the sniffed head
    does not turn a package into plain XML (its attachments unjudged)."""
    from signkit.jobs.verify_job import detect_format, verify_document

    data = two().replace(b"<edXML ", b"<!--" + b" " * 4096 + b"-->\n<edXML ", 1)
    path = write(tmp_path, data)
    assert detect_format(path) == "xml"
    verdict = verify_document(str(path), OFFLINE)
    assert not isinstance(verdict, Exception)
    assert verdict.format == "edxml"
    assert {s.attachment for s in verdict.signatures} >= {"a.pdf", "b.pdf"}
