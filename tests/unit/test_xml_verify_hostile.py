"""Any damage to a signed XML document gets a verdict or an input error, never a
bug (exit 70): elements removed, attributes and texts replaced, in the regression
fixtures of every class (fixtures/xml/verify/), verified offline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from signkit.errors import SignkitError
from signkit.verify.policy import VerifyPolicy
from signkit.verify.verdict import DocumentVerdict
from signkit.verify.xml import verify_xml
from support.infra import FIXTURES, pki_certificate

FIXTURES = sorted((FIXTURES / "xml" / "verify").glob("*.xml"))
JUNK = ["", "AAAA", "%%%", "#nowhere", "urn:x", "-1", "http://example.org/", "é" * 3, "0" * 40]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.sampled_from(FIXTURES),
    st.lists(
        st.tuples(
            st.sampled_from(["drop", "attr", "text"]), st.integers(0, 10_000), st.sampled_from(JUNK)
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_damaged_signatures_get_a_verdict(tmp_path: Path, fixture: Path, damage: list) -> None:  # type: ignore[type-arg]
    root = etree.fromstring(fixture.read_bytes(), etree.XMLParser(resolve_entities=False))
    for kind, n, junk in damage:
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        el = elements[n % len(elements)]
        if kind == "drop" and el.getparent() is not None:
            el.getparent().remove(el)
        elif kind == "attr" and el.attrib:
            names = sorted(el.attrib)
            el.set(names[n % len(names)], junk)
        else:
            el.text = junk
    path = tmp_path / fixture.name
    path.write_bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"))
    (tmp_path / "data.txt").write_bytes((fixture.parent / "data.txt").read_bytes())
    policy = VerifyPolicy(
        anchors=(pki_certificate("root-ca"),),
        offline=True,
        revocation="off",
        now=datetime(2026, 3, 12, tzinfo=UTC),
    )
    try:
        verdict = verify_xml(path, policy)
    except SignkitError:
        return  # an input error with its message and exit code
    assert isinstance(verdict, DocumentVerdict)
    for sig in verdict.signatures:
        passed = sig.indication.value == "PASSED"
        assert sig.sentence and passed == (sig.sub_indication.value == "OK")
