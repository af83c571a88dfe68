"""XML parsing limits and DTD policy, the byte tokenizer behind splicing, canonical
forms, presets, config."""

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
from signkit.formats.xml import c14n, options, splice
from signkit.formats.xml.parse import parse
from support.infra import FIXTURES


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x">]><r/>', "declares or uses entities"),
        (b"<!-- c --><!DOCTYPE r SYSTEM 'http://x/'><r/>", "names an external DTD"),
        (b"<!DOCTYPE r PUBLIC '-//x//EN' 'http://x/'><r/>", "names an external DTD"),
        (b"<!DOCTYPE r [<!ATTLIST r Id ID #IMPLIED> %pe;]><r/>", "declares or uses entities"),
        (b"<!DOCTYPE r [<!ATTLIST r a CDATA %pe;>]><r/>", "declares or uses entities"),
        (b"<!DOCTYPE r [<!ATTLIST r Id ID #IMPLIED><!ENTITY e 'x'>]><r/>", "declares or uses"),
        (b"<!DOCTYPE r [<!NOTATION n SYSTEM 'x'>]><r/>", "other than elements and attribute"),
        (b'<!DOCTYPE r [<!ATTLIST r a CDATA "&e;">]><r/>', "malformed XML"),
        (b"<!DOCTYPE r [<!ATTLIST r a CDATA #IMPLIED><r/>", "other than elements"),
        (b"<!DOCTYPE r [<!ATTLIST r a CDATA", "unterminated declaration"),
        ("<r/>".encode("utf-16"), "UTF-16/32 byte order mark"),
        # XML's own encoding detection without a byte order mark (Appendix F)
        ('<?xml version="1.0"?><r/>'.encode("utf-16-le"), "UTF-16 without a byte order mark"),
        ('<?xml version="1.0"?><r/>'.encode("utf-16-be"), "UTF-16 without a byte order mark"),
        ("<r/>".encode("utf-32-le"), "UTF-32 without a byte order mark"),
        ("<r/>".encode("utf-32-be"), "UTF-32 without a byte order mark"),
        ("<?xml".encode("cp500") + b"<r/>", "not UTF-8 (EBCDIC)"),
        (
            ("<r " + " ".join(f'a{i}="{i}"' for i in range(6000)) + "/>").encode(),
            "an element with more than 4,096 attributes",
        ),
        (b"hello <r/>", "text before the root element"),
        (b"", "no root element"),
        (b"<r><a></r>", "malformed XML"),
        (b"<r>&undefined;</r>", "malformed XML"),
        (b"<a>" * 300 + b"</a>" * 300, "nesting deeper than 256 levels"),
    ],
)
def test_refused_before_or_by_the_parser(data: bytes, message: str) -> None:
    with pytest.raises(InputFormatError) as err:
        parse(data, "doc.xml")
    assert message in str(err.value) and str(err.value).startswith("doc.xml: ")


def test_signing_takes_utf8_only() -> None:
    from signkit.formats.xml.parse import require_utf8

    with pytest.raises(InputFormatError, match="encoding windows-1258 is not supported"):
        require_utf8(b'<?xml version="1.0" encoding="windows-1258"?><r/>', "d")
    require_utf8(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?><r/>', "d")
    # verification reads what libxml2 reads, in ASCII-compatible encodings
    assert parse(b'<?xml version="1.0" encoding="ISO-8859-1"?><r>caf\xe9</r>', "d").root.text == (
        "café"
    )


def test_accepted_prologs() -> None:
    for data in (
        b"\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?><r/>",
        b"<?xml version='1.0'?>\n<!-- c --><?pi x?>\n<r/>",
        b"<r>&amp;&#233;&#x1EC7;</r>",
        b"<!DOCTYPE r>\n<r/>",
    ):
        assert parse(data, "d").root.tag == "r"


def test_an_internal_subset_of_id_declarations_is_honoured() -> None:
    """Regression: interoperability files declare their Id attributes in an internal
    DTD subset; such documents were refused outright. The declared IDs (of any
    attribute name), the attribute defaults, and a quoted '>' are read as XML says."""
    doc = parse(
        b'<?xml version="1.0"?>\n<!DOCTYPE r [\n<!-- ids -->\n<?pi x?>\n'
        b'<!ATTLIST y ref ID #IMPLIED kind (a|b) "a" note CDATA #FIXED "1>0">\n'
        b"<!ATTLIST z nid NOTATION (n) #IMPLIED key ID #REQUIRED>\n"
        b"<!ELEMENT r ANY>]>\n"
        b'<r><y ref="first"/><z key="second"/><y Id="third"/></r>',
        "d",
    )
    assert doc.dtd_ids == (("y", "ref"), ("z", "key"))
    # a value, with or without #FIXED, is a default; #IMPLIED and #REQUIRED are not
    assert doc.dtd_defaults == (("y", "kind"), ("y", "note"))
    ids = doc.ids(("Id",))
    assert [ids[k][0].tag for k in ("first", "second", "third")] == ["y", "z", "y"]
    assert doc.root[0].get("kind") == "a" and doc.root[0].get("note") == "1>0"
    assert splice.locate(b"<!DOCTYPE r [<!ATTLIST r a CDATA '<x>'>]><r><s/></r>", 1, 41).start == 44


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
    doc = parse(data, "d")
    elements = list(doc.root.iter(tag=etree.Element))
    for index, element in enumerate(elements):
        assert splice.element_index(doc.tree, element) == index
        span = splice.locate(data, index, doc.root_offset)
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


def test_lxml_subtree_c14n_bug_is_why_signkit_walks_the_subtree() -> None:
    """lxml 6.1 (libxml2 2.14) canonicalises a subtree whose default namespace is
    declared above it with a spurious xmlns="" two levels down. If this starts
    failing, lxml fixed it (signkit's own walk does not depend on it)."""
    root = etree.fromstring(b'<S xmlns="urn:d"><O><P><Q>t</Q></P></O></S>')
    assert b'<Q xmlns="">' in etree.tostring(root[0], method="c14n")
    assert c14n.canonicalize_element(root[0], c14n.INCLUSIVE) == (
        b'<O xmlns="urn:d"><P><Q>t</Q></P></O>'
    )


def test_inclusive_c14n_inherits_xml_attributes_of_ancestors() -> None:
    root = etree.fromstring(
        b'<r xml:lang="vi" xmlns:f="urn:f"><s xml:space="preserve"><x xml:lang="en">1</x>'
        b"<y>2</y></s></r>"
    )
    s = root[0]
    inclusive, exclusive = c14n.INCLUSIVE, c14n.method_of(c14n.EXC_C14N)
    assert exclusive is not None
    assert c14n.canonicalize_element(s[1], inclusive) == (
        b'<y xmlns:f="urn:f" xml:lang="vi" xml:space="preserve">2</y>'
    )
    assert c14n.canonicalize_element(s[0], inclusive) == (
        b'<x xmlns:f="urn:f" xml:lang="en" xml:space="preserve">1</x>'
    )
    assert c14n.canonicalize_element(s[1], exclusive) == b"<y>2</y>"
    assert root.get("{http://www.w3.org/XML/1998/namespace}lang") == "vi"
    assert s[1].attrib == {}  # nothing left behind


def test_c14n_11_fixes_up_xml_base_and_does_not_inherit_xml_id() -> None:
    root = etree.fromstring(
        b'<r xml:base="http://a.example/d/" xml:id="top" xml:lang="vi">'
        b'<s xml:base="sub/"><t xml:base="x.xml">1</t><u>2</u></s></r>'
    )
    v11 = c14n.method_of(c14n.C14N11)
    assert v11 is not None
    assert c14n.canonicalize_element(root[0][1], v11) == (
        b'<u xml:base="http://a.example/d/sub/" xml:lang="vi">2</u>'
    )
    assert c14n.canonicalize_element(root[0][0], v11) == (
        b'<t xml:base="http://a.example/d/sub/x.xml" xml:lang="vi">1</t>'
    )
    # C14N 1.0 carries every xml:* attribute as it is, xml:id included
    assert c14n.canonicalize_element(root[0][1], c14n.INCLUSIVE) == (
        b'<u xml:base="sub/" xml:id="top" xml:lang="vi">2</u>'
    )


def test_an_element_with_non_ascii_cdata_and_text_after_it_is_canonicalised_in_place() -> None:
    """Regression: an element was re-parsed from etree.tostring(), whose ASCII
    output turns 'ê' inside CDATA into the text '&#234;' (a wrong digest), and
    whose tail made the copy unparsable (XMLSyntaxError) in mixed content."""
    doc = parse(
        "<r><p>trước <e Id='x'><![CDATA[<b>Tiếng Việt</b> & ê]]>&#7879;</e> sau</p></r>".encode(),
        "d",
    )
    element = doc.ids(("Id",))["x"][0]
    assert c14n.canonicalize_element(element, c14n.INCLUSIVE) == (
        '<e Id="x">&lt;b&gt;Tiếng Việt&lt;/b&gt; &amp; ê\u1ec7</e>'.encode()
    )


def test_two_prefixes_of_one_namespace_keep_their_prefixes() -> None:
    """Regression: taking the enveloped signature out of the parsed tree and putting
    it back let lxml rebind a prefix to another one of the same namespace, so a
    digest (or SignedInfo) was computed over names the bytes do not have."""
    data = (
        b'<r xmlns:a="urn:same" xmlns:b="urn:same"><b:x>1</b:x>'
        b'<S Id="s"><b:y>2</b:y></S><a:z>3</a:z></r>'
    )
    doc = parse(data, "d")
    signature = doc.root[1]
    nodes = c14n.NodeSet(tree=doc.tree, excluded=(signature,))
    assert c14n.canonicalize(nodes, c14n.INCLUSIVE) == (
        b'<r xmlns:a="urn:same" xmlns:b="urn:same"><b:x>1</b:x><a:z>3</a:z></r>'
    )
    assert c14n.canonicalize_element(signature, c14n.INCLUSIVE) == (
        b'<S xmlns:a="urn:same" xmlns:b="urn:same" Id="s"><b:y>2</b:y></S>'
    )


# Random documents for the canonicaliser: namespaces declared and redeclared,
# xml:* attributes, comments, PIs, CDATA, character references, CRLF.
_ns_decls = st.sampled_from(
    ["", ' xmlns="urn:d"', ' xmlns:p="urn:p"', ' xmlns=""', ' xmlns:q="urn:d" xmlns:p="urn:p2"']
)
_xml_attrs = st.sampled_from(["", ' xml:lang="vi"', ' xml:space="preserve" xml:lang="en"'])
_tags = st.sampled_from(["a", "b", "p:c", "q:d"])
_bodies = st.sampled_from(
    [
        "",
        "x",
        "\r\n",
        "&amp;&lt;&gt;&quot;",
        "&#13;&#x9;",
        "<!--c-->",
        "<?pi d?>",
        "<![CDATA[<ê>]]>",
        "ệ",
    ]
)


@st.composite
def c14n_documents(
    draw: st.DrawFn,
    depth: int = 0,
    tags: st.SearchStrategy[str] = _tags,
    decls: st.SearchStrategy[str] = _ns_decls,
    xml_attrs: st.SearchStrategy[str] = _xml_attrs,
) -> str:
    tag = draw(tags)
    attrs = (
        draw(decls) + draw(xml_attrs) + draw(st.sampled_from(["", ' z="1" a="&#10;"', " p:k='v'"]))
    )
    if depth > 3 or (depth and draw(st.booleans())):
        return f"<{tag}{attrs}>{draw(_bodies)}</{tag}>"
    kids = draw(
        st.lists(c14n_documents(depth + 1, tags, decls, xml_attrs), max_size=3)  # type: ignore[call-arg]
    )
    return f"<{tag}{attrs}>{draw(_bodies)}" + "".join(k + draw(_bodies) for k in kids) + f"</{tag}>"


@settings(max_examples=300, deadline=None)
@given(
    c14n_documents(), st.sampled_from([c14n.C14N10, c14n.EXC_C14N, c14n.C14N10 + "#WithComments"])
)
def test_the_walk_agrees_with_libxml2_on_whole_documents(body: str, uri: str) -> None:
    """The node-set walk (XPath transforms; the reference implementation of the
    rules) and libxml2 (whole documents, and subtrees copied with their context)
    canonicalise alike; xmlsec1 referees both in test_xml_properties.py."""
    data = (
        '<?pi before?><!--c--><root xmlns:p="urn:p" xmlns:q="urn:q">'
        + body
        + "</root><!--after--><?pi after?>\n<?pi last?>"
    ).encode()
    try:
        doc = parse(data, "d")
    except InputFormatError:
        return  # an undeclared prefix in this draw: not XML
    method = c14n.method_of(uri)
    assert method is not None
    whole = c14n.NodeSet(tree=doc.tree, comments=True)
    assert c14n.canonicalize(whole, method) == c14n._Walker(whole, method).run()
    # an enveloped signature taken out (libxml2 on a copy, the walk skipping it)
    for child in doc.root:
        enveloped = c14n.NodeSet(tree=doc.tree, comments=True, excluded=(child,))
        assert c14n.canonicalize(enveloped, method) == c14n._Walker(enveloped, method).run()
    # every element where it stands (libxml2 on a copy carrying its context, or
    # the walk where two prefixes name one namespace)
    for element in doc.root.iter(tag=etree.Element):
        subtree = c14n.NodeSet(tree=doc.tree, apex=element, comments=True)
        assert c14n.canonicalize(subtree, method) == c14n._Walker(subtree, method).run()


@settings(max_examples=300, deadline=None)
@given(c14n_documents())
def test_the_prefix_check_looks_at_every_element_that_could_fail_it(body: str) -> None:
    """_one_prefix_per_namespace answers at once when no namespace is declared
    with two prefixes, else looks only at the apex and the elements that
    declare a namespace; either way it answers as asking every element of the
    subtree would (an element that declares none has its parent's in scope)."""
    data = f'<root xmlns:p="urn:p" xmlns:q="urn:q" xmlns:s="urn:d">{body}</root>'.encode()
    try:
        doc = parse(data, "d")
    except InputFormatError:
        return  # an undeclared prefix in this draw: not XML

    def every_element(apex: etree._Element) -> bool:
        for el in apex.iter(tag=etree.Element):
            uris = [u for u in el.nsmap.values() if u]
            if len(set(uris)) != len(uris):
                return False
        return True

    for element in doc.root.iter(tag=etree.Element):
        assert c14n._one_prefix_per_namespace(element) == every_element(element)


@pytest.mark.parametrize(
    "data",
    [
        # a prefix redeclared below the element, as its ancestors declare it
        b'<r xmlns:p="urn:p"><a><p:c><e><d xmlns:p="urn:p"/></e></p:c></a></r>',
        # a default namespace on the element: the spurious xmlns="" deeper down
        b'<r><a xmlns="urn:d"><b><c>t</c></b></a></r>',
    ],
)
def test_libxml2_on_an_element_in_place_is_used_only_where_exact(data: bytes) -> None:
    """lxml canonicalises an element where it stands, with its ancestors'
    declarations, much faster than a copy; in these shapes its output differs
    from the rules, so signkit takes another path and still agrees with the walk."""
    doc = parse(data, "d")
    element = doc.root[0]
    nodes = c14n.NodeSet(tree=doc.tree, apex=element)
    raw = etree.tostring(element, method="c14n")
    assert raw != c14n._Walker(nodes, c14n.INCLUSIVE).run()  # lxml's own output is off
    assert c14n._where_it_stands(nodes, c14n.INCLUSIVE) is None
    assert c14n.canonicalize(nodes, c14n.INCLUSIVE) == c14n._Walker(nodes, c14n.INCLUSIVE).run()


# Elements where lxml's in-place canonicalisation applies: prefixes declared,
# redeclared and rebound, xml:* attributes, no default namespace.
_prefixed_decls = st.sampled_from(
    ["", ' xmlns:p="urn:p"', ' xmlns:q="urn:d" xmlns:p="urn:p2"', ' xmlns:r="urn:p"']
)
_prefixed_tags = st.sampled_from(["a", "p:b", "q:d", "r:e"])
_rare_xml_attrs = st.sampled_from(["", "", "", ' xml:lang="vi"', ' xml:space="preserve"'])


@settings(max_examples=400, deadline=None)
@given(
    c14n_documents(tags=_prefixed_tags, decls=_prefixed_decls, xml_attrs=_rare_xml_attrs),
    st.sampled_from([c14n.C14N10, c14n.C14N10 + "#WithComments", c14n.EXC_C14N]),
    st.sampled_from([(), ("p",), ("#default", "q")]),
)
def test_every_element_in_place_agrees_with_the_walk(
    body: str, uri: str, prefixes: tuple[str, ...]
) -> None:
    data = ('<!--c--><root xmlns:p="urn:p" xmlns:q="urn:q">' + body + "</root>").encode()
    try:
        doc = parse(data, "d")
    except InputFormatError:
        return  # an undeclared prefix in this draw: not XML
    method = c14n.method_of(uri, prefixes)
    assert method is not None
    for element in doc.root.iter(tag=etree.Element):
        for comments in (True, False):
            nodes = c14n.NodeSet(tree=doc.tree, apex=element, comments=comments)
            assert c14n.canonicalize(nodes, method) == c14n._Walker(nodes, method).run()


def test_presets_are_data_and_validated() -> None:
    from signkit.formats.xml.presets import BUILTIN

    for name, table in BUILTIN.items():
        opts = options.apply_settings(options.XmlDocOptions(), table, name)
        assert opts.ds_prefix == ""
        # an edXML envelope always has its edXMLHeader: never created
        assert opts.create_parent is (name != "vn-edxml")
    with pytest.raises(UsageError, match="unknown setting 'colour'"):
        options.apply_settings(options.XmlDocOptions(), {"colour": "red"}, "t")
    with pytest.raises(UsageError, match="XAdES property"):
        options.apply_settings(options.XmlDocOptions(), {"signer_role": "x"}, "t")
    with pytest.raises(UsageError, match="paths are element local names"):
        options.apply_settings(options.XmlDocOptions(), {"parent_path": ["a", "b[1]"]}, "t")


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
    from signkit.formats.xml.batch import tax_code_of
    from support.infra import pki_certificate

    assert tax_code_of(pki_certificate("signer-vn")) == "0100000000-999"
    assert tax_code_of(pki_certificate("signer-rsa2048")) is None


def test_xml_fixtures_regenerate_byte_for_byte() -> None:
    proc = subprocess.run(
        [sys.executable, str(FIXTURES / "make_xml_samples.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_a_detached_reference_to_a_huge_or_special_file_is_refused(tmp_path: Path) -> None:
    """A hostile detached signature cannot make verify read gigabytes or a device."""
    from signkit.formats.xml.references import SignedDataNotFoundError, read_external

    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate((64 << 20) + 1)  # sparse: nothing is written
    with pytest.raises(SignedDataNotFoundError, match="over 64 MiB"):
        read_external("big.bin", tmp_path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(SignedDataNotFoundError, match="not a regular file"):
        read_external("dir", tmp_path)
    for uri in ("http://example.org/x.xml", "/etc/passwd", "file:///etc/passwd"):
        with pytest.raises(SignedDataNotFoundError, match="not a relative file reference"):
            read_external(uri, tmp_path)
    (tmp_path / "small file.xml").write_bytes(b'<a><b Id="x">1</b></a>')
    assert read_external("small%20file.xml", tmp_path) == b'<a><b Id="x">1</b></a>'


def test_a_long_parser_message_is_cut_between_words() -> None:
    """Regression: the parser's reason was cut at 160 characters, mid-word."""
    opening = "<" + "_".join(["giayphepkinhdoanh"] * 6) + ">"
    data = f"<?xml version='1.0' encoding='UTF-8'?>\n<hoso>{opening}</hoso>".encode()
    with pytest.raises(InputFormatError) as caught:
        parse(data, "long.xml")
    reason = caught.value.message.removeprefix("malformed XML (").removesuffix(")")
    assert reason.endswith(" …"), reason
    words = reason.removesuffix(" …").split()
    with pytest.raises(etree.XMLSyntaxError) as original:
        etree.fromstring(data)
    assert words == str(original.value).split()[: len(words)], reason
