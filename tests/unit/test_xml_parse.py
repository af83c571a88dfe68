"""XML parsing limits, the byte tokenizer behind splicing, canonical forms, presets, config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from signkit.config import load_config
from signkit.errors import ConfigError, InputFormatError, UsageError
from signkit.formats import xml, xml_parse
from support.infra import REPO


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE r><r/>', "DTDs are not allowed"),
        (b"<!-- c --><!DOCTYPE r SYSTEM 'http://x/'><r/>", "DTDs are not allowed"),
        (b'<?xml version="1.0" encoding="windows-1258"?><r/>', "encoding windows-1258"),
        ("<r/>".encode("utf-16"), "UTF-16/32 byte order mark"),
        (b"hello <r/>", "text before the root element"),
        (b"", "no root element"),
        (b"<r><a></r>", "not well-formed XML"),
        (b"<r>&undefined;</r>", "not well-formed XML"),
        (b"<a>" * 300 + b"</a>" * 300, "nesting deeper than 256 levels"),
    ],
)
def test_refused_before_or_by_the_parser(data: bytes, message: str) -> None:
    with pytest.raises(InputFormatError) as err:
        xml_parse.parse(data, "doc.xml")
    assert message in str(err.value) and str(err.value).startswith("doc.xml: ")


def test_accepted_prologs() -> None:
    for data in (
        b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><r/>",
        b"<?xml version='1.0'?>\n<!-- c --><?pi x?>\n<r/>",
        b"<r>&amp;&#233;&#x1EC7;</r>",
    ):
        assert xml_parse.parse(data, "d").getroot().tag == "r"


# Random documents with everything that could fool a tokenizer: '>' and quotes
# in attribute values, '<' in comments, CDATA and PIs, empty-element tags.
_names = st.sampled_from(["a", "b", "c", "p:d", "e1"])
_texts = st.sampled_from(["", "x", " > ", "&amp;", "&lt;a&gt;", "\r\n  ", "Ệ"])
_inserts = st.sampled_from(["", "<!-- <a> -->", "<![CDATA[<b>]]>", "<?pi <c>?>", "<!--->-->"])
_attrs = st.sampled_from(["", ' k="v>w"', " k='\"'", ' k = "1"  j="<x"'.replace("<", "&lt;")])


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    name = draw(_names)
    attrs = draw(_attrs)
    if depth > 3 or (draw(st.booleans()) and depth > 0):
        return f"<{name}{attrs}/>" if draw(st.booleans()) else f"<{name}{attrs}></{name}>"
    children = draw(st.lists(documents(depth + 1), max_size=3))  # type: ignore[call-arg]
    body = "".join(draw(_inserts) + c + draw(_texts) for c in children) + draw(_inserts)
    return f"<{name}{attrs}>{draw(_texts)}{body}</{name}>"


@settings(max_examples=200, deadline=None)
@given(documents())
def test_locate_finds_every_element_exactly(doc: str) -> None:
    data = (
        '<?xml version="1.0"?>\n<!-- <z> -->\n<root xmlns:p="urn:p">' + doc + "</root>"
    ).encode()
    tree = xml_parse.parse(data, "d")
    elements = list(tree.getroot().iter(tag=etree.Element))
    for index, element in enumerate(elements):
        assert xml_parse.element_index(tree, element) == index
        span = xml_parse.locate(data, index)
        piece = data[span.start : span.after]
        wrapped = b'<w xmlns:p="urn:p">' + piece + b"</w>"
        copy = etree.fromstring(wrapped)[0]
        assert copy.tag == element.tag
        assert etree.tostring(copy, method="c14n") == etree.tostring(
            etree.fromstring(etree.tostring(element, with_tail=False)), method="c14n"
        )
        assert span.empty == piece.endswith(b"/>")
        if not span.empty:
            assert data[span.end : span.after].startswith(b"</")


def test_lxml_subtree_c14n_bug_is_why_signkit_reparses() -> None:
    """lxml 6.1 (libxml2 2.14) canonicalises a subtree whose default namespace is
    declared above it with a spurious xmlns="" two levels down. If this starts
    failing, lxml fixed it and xml.c14n could canonicalise in place again."""
    root = etree.fromstring(b'<S xmlns="urn:d"><O><P><Q>t</Q></P></O></S>')
    assert b'<Q xmlns="">' in etree.tostring(root[0], method="c14n")
    assert xml.c14n(root[0], "inclusive") == b'<O xmlns="urn:d"><P><Q>t</Q></P></O>'


def test_inclusive_c14n_inherits_xml_attributes_of_ancestors() -> None:
    root = etree.fromstring(
        b'<r xml:lang="vi" xmlns:f="urn:f"><s xml:space="preserve"><x xml:lang="en">1</x>'
        b"<y>2</y></s></r>"
    )
    s = root[0]
    assert xml.c14n(s[1], "inclusive") == (
        b'<y xmlns:f="urn:f" xml:lang="vi" xml:space="preserve">2</y>'
    )
    assert xml.c14n(s[0], "inclusive") == (
        b'<x xmlns:f="urn:f" xml:lang="en" xml:space="preserve">1</x>'
    )
    assert xml.c14n(s[1], "exclusive") == b"<y>2</y>"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "vi"
    assert s[1].attrib == {}  # nothing left behind


def test_presets_are_data_and_validated() -> None:
    from signkit.formats.xml_presets import BUILTIN

    for name, table in BUILTIN.items():
        opts = xml.apply_settings(xml.XmlDocOptions(), table, name)
        assert opts.create_parent and opts.ds_prefix == ""
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        xml.apply_settings(xml.XmlDocOptions(), {"colour": "red"}, "t")
    with pytest.raises(UsageError, match="XAdES property"):
        xml.apply_settings(xml.XmlDocOptions(), {"signer_role": "x"}, "t")
    with pytest.raises(UsageError, match="paths are element local names"):
        xml.apply_settings(xml.XmlDocOptions(), {"parent_path": ["a", "b[1]"]}, "t")


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_config(None).path is None  # no default file: empty configuration
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[xml-presets\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    (tmp_path / "signkit").mkdir()
    (tmp_path / "signkit" / "config.toml").write_text(
        '[xml-presets.a]\nlevel = "B-B"\n', encoding="utf-8"
    )
    config = load_config(None)
    assert config.section("xml-presets")["a"]["level"] == "B-B"
    assert config.section("profiles") == {}


def test_tax_code_of_the_vietnamese_test_certificate() -> None:
    from support.infra import pki_certificate

    assert xml.tax_code_of(pki_certificate("signer-vn")) == "0100000000-999"
    assert xml.tax_code_of(pki_certificate("signer-rsa2048")) is None


def test_xml_fixtures_regenerate_byte_for_byte() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "fixtures" / "make_xml_samples.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_detached_reference_to_a_huge_or_special_file_is_refused(tmp_path: Path) -> None:
    """A hostile detached signature cannot make verify read gigabytes or a device."""
    from signkit.errors import DocumentError
    from signkit.formats.xml import resolve_external

    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate((64 << 20) + 1)  # sparse: nothing is written
    with pytest.raises(DocumentError, match="over 64 MiB"):
        resolve_external("big.bin", tmp_path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(DocumentError, match="not a regular file"):
        resolve_external("dir", tmp_path)
    for uri in ("http://example.org/x.xml", "/etc/passwd", "file:///etc/passwd"):
        with pytest.raises(DocumentError, match="not a relative file reference"):
            resolve_external(uri, tmp_path)
    (tmp_path / "small.xml").write_bytes(b'<a><b Id="x">1</b></a>')
    assert resolve_external("small.xml", tmp_path) == b'<a><b Id="x">1</b></a>'
    assert resolve_external("small.xml#x", tmp_path).text == "1"
