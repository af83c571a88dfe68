"""The run-time patches of dependencies (src/signkit/patches.py): each touches
names that exist in the installed versions, stays within its version guard,
gives the same results as the code it replaces, and is skipped outside it.

These tests are meant to fail on a dependency upgrade that renames or
removes a private name a patch relies on, or moves past a guard: re-check
the patch against the new version, then move the guard.
"""

from __future__ import annotations

import importlib
import io
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signkit import patches

HEX = "0123456789abcdefABCDEF"
WS = " \n\r\t\f\x00"


def _instance(cls: type) -> Any:
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=[]) if cls is ValidationContext else cls()


def _resolve(module: str, dotted: str) -> Any:
    value: Any = importlib.import_module(module)
    parts = dotted.split(".")
    for n, part in enumerate(parts):
        if hasattr(value, part):
            value = getattr(value, part)
        elif n > 0 and isinstance(value, type):
            # an instance attribute: set by the class's __init__
            value = getattr(_instance(value), part)
        else:
            raise AttributeError(f"{module}.{'.'.join(parts[: n + 1])}")
    return value


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.name)
def test_every_touched_name_exists(patch: patches.Patch) -> None:
    for module, dotted in patch.touches:
        _resolve(module, dotted)


@pytest.mark.parametrize(("module", "dotted"), patches.PRIVATE_USES)
def test_every_private_name_signkit_calls_exists(module: str, dotted: str) -> None:
    assert callable(_resolve(module, dotted))


@pytest.mark.parametrize("patch", patches.PATCHES, ids=lambda p: p.name)
def test_installed_versions_are_within_the_guards(patch: patches.Patch) -> None:
    assert patches.applicable(patch), (
        f"{patch.distribution} is outside the version {patch.name} was checked against"
    )


def test_a_version_outside_the_guard_leaves_the_dependency_alone() -> None:
    patch = patches.PATCHES[0]
    low, high = patch.versions
    assert patches.applicable(patch, low)
    assert not patches.applicable(patch, high)
    assert not patches.applicable(patch, (0, 1))


def test_install_puts_every_patch_in_place() -> None:
    import pyhanko_certvalidator
    from asn1crypto import x509
    from pyhanko.pdf_utils import generic, misc
    from pyhanko.sign import general

    assert set(patches.install()) == {p.name for p in patches.PATCHES}
    assert getattr(generic.read_hex_string_from_stream, "signkit_fast", False)
    assert getattr(x509.NameTypeAndValue, "signkit_cached", False)
    assert getattr(pyhanko_certvalidator.async_validate_path, "signkit_cached", False)
    assert getattr(general.match_issuer_serial, "signkit_serial_first", False)
    assert getattr(misc.read_non_whitespace, "signkit_fast", False)
    assert getattr(generic.ArrayObject.read_from_stream, "signkit_fast", False)
    assert getattr(general._partition_certs, "signkit_shared", False)
    for holder, attr in ((x509.Certificate, "key_identifier"), (x509.Name, "hashable")):
        assert getattr(holder.__dict__[attr].fget, "signkit_remembered", False)


def _original(data: bytes):  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic

    stream = io.BytesIO(data)
    # the untouched reader, even if a test in this process installed the fast one
    current = generic.read_hex_string_from_stream
    reader = getattr(current, "__wrapped_original__", current)
    value = reader(stream)
    return value, stream.tell()


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(st.sampled_from(list(HEX + WS)), max_size=300).map("".join),
    tail=st.binary(max_size=20),
)
def test_fast_hex_reader_matches_pyhanko(body: str, tail: bytes) -> None:
    data = b"<" + body.encode() + b">" + tail
    expected, position = _original(data)
    stream = io.BytesIO(data)
    got = patches.read_hex_string(stream, original=None)
    assert got == expected and type(got) is type(expected)
    assert stream.tell() == position  # the parser goes on from the same byte


def test_fast_hex_reader_errors_and_comments() -> None:
    from pyhanko.pdf_utils.misc import PdfStreamError

    with pytest.raises(PdfStreamError, match="Unexpected token"):
        patches.read_hex_string(io.BytesIO(b"<0A1G>"), original=None)
    with pytest.raises(PdfStreamError, match="ended prematurely"):
        patches.read_hex_string(io.BytesIO(b"<0A1B"), original=None)
    calls = []

    def original(stream: io.BytesIO) -> bytes:
        calls.append(stream.tell())
        return b"from pyhanko"

    assert patches.read_hex_string(io.BytesIO(b"<0A % note\n1B>"), original=original) == (
        b"from pyhanko"
    )
    assert calls == [0]  # handed back at the '<'


@given(st.text(alphabet="Nguyễn Văn An ỦY BAN nhân dân  tỉnh\u00a0Nam Định", max_size=40))
def test_name_cache_keeps_rfc5280_comparison(text: str) -> None:
    from asn1crypto import x509

    a = x509.Name.build({"common_name": text or "x", "country_name": "VN"})
    b = x509.Name.build({"common_name": (text or "x").upper(), "country_name": "VN"})
    before = (a == b, a.hashable, b.hashable)
    fresh_a, fresh_b = x509.Name.load(a.dump()), x509.Name.load(b.dump())
    patches.install()
    assert (fresh_a == fresh_b, fresh_a.hashable, fresh_b.hashable) == before
    # and again from the cache
    again_a, again_b = x509.Name.load(a.dump()), x509.Name.load(b.dump())
    assert (again_a == again_b, again_a.hashable, again_b.hashable) == before


def test_path_cache_only_within_its_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside ``remembered_paths`` every validation runs; inside, an offline
    success is remembered for the same path, instant, revocation data and
    certificates at hand, and a validation that may fetch is never
    remembered."""
    import asyncio
    from datetime import UTC, datetime

    from asn1crypto import x509
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.authority import CertTrustAnchor
    from pyhanko_certvalidator.path import ValidationPath

    from support.infra import pki_certificate

    root = x509.Certificate.load(pki_certificate("root-ca"))
    interm = x509.Certificate.load(pki_certificate("interm-ca"))
    tsa = x509.Certificate.load(pki_certificate("tsa"))
    path = ValidationPath(trust_anchor=CertTrustAnchor(root), interm=[], leaf=interm)
    calls: list[datetime] = []
    monkeypatch.setattr(patches, "_PATHS", {})

    async def validate(vc: Any, p: Any, params: Any = None) -> Any:
        calls.append(vc.timing_params.validation_time)
        return p.leaf

    cached = patches.cached_path_validation(validate)

    def run(moment: datetime, *at_hand: x509.Certificate, fetch: bool = False) -> None:
        vc = ValidationContext(
            trust_roots=[root],
            other_certs=list(at_hand),
            moment=moment,
            allow_fetching=fetch,
            revocation_mode="soft-fail",
        )
        assert asyncio.run(cached(vc, path)) == interm

    first, second = datetime(2030, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)
    run(first)
    run(first)
    assert len(calls) == 2  # outside a block: never remembered
    with patches.remembered_paths("test-policy"):
        run(first)
        run(first)
        assert len(calls) == 3  # the second one was remembered
        run(second)
        assert len(calls) == 4  # another instant is another question
        run(first, tsa)
        assert len(calls) == 5  # and another certificate at hand
        run(first, fetch=True)
        run(first, fetch=True)
        assert len(calls) == 7  # what may come from the network is not remembered
    with patches.remembered_paths("another-policy"):
        run(first)
        assert len(calls) == 8  # another trust policy too


def test_path_cache_replays_a_failure_for_the_same_inputs_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An offline validation failure is remembered as a success is: the same
    question raises the same error again without validating, as a fresh
    object naming the path it was asked about; another certificate at hand
    (a responder's, an issuer's) makes it another question."""
    import asyncio
    from datetime import UTC, datetime

    from asn1crypto import x509
    from pyhanko_certvalidator import ValidationContext, validate
    from pyhanko_certvalidator.authority import CertTrustAnchor
    from pyhanko_certvalidator.errors import InsufficientRevinfoError
    from pyhanko_certvalidator.path import ValidationPath

    from support.infra import pki_certificate

    monkeypatch.setattr(patches, "_PATHS", {})
    root = x509.Certificate.load(pki_certificate("root-ca"))
    interm = x509.Certificate.load(pki_certificate("interm-ca"))
    tsa = x509.Certificate.load(pki_certificate("tsa"))
    calls: list[Any] = []

    async def certvalidator(vc: Any, p: Any, params: Any = None) -> Any:
        calls.append(p)
        return await validate.async_validate_path(vc, p, params)

    cached = patches.cached_path_validation(certvalidator)

    def run(*at_hand: x509.Certificate) -> tuple[Any, InsufficientRevinfoError]:
        # no revocation data and hard-fail: the intermediate cannot pass
        vc = ValidationContext(
            trust_roots=[root],
            other_certs=list(at_hand),
            moment=datetime(2030, 1, 1, tzinfo=UTC),
            allow_fetching=False,
            revocation_mode="hard-fail",
            crls=[],
            ocsps=[],
        )
        path = ValidationPath(trust_anchor=CertTrustAnchor(root), interm=[], leaf=interm)
        with pytest.raises(InsufficientRevinfoError) as caught:
            asyncio.run(cached(vc, path))
        return path, caught.value

    with patches.remembered_paths("test-failures"):
        first_path, first = run()
        again_path, again = run()
        assert len(calls) == 1  # the second one was remembered
        assert again is not first and again.__cause__ is None
        assert (str(again), again.is_ee_cert, again.is_side_validation) == (
            str(first),
            first.is_ee_cert,
            first.is_side_validation,
        )
        assert first.original_path is first_path
        assert again.original_path is again_path and again.current_path is again_path
        run(tsa)
        assert len(calls) == 2  # another certificate at hand is another question
        run(tsa)
        assert len(calls) == 2
    run()
    assert len(calls) == 3  # outside the block: never remembered


def _test_certificates() -> list[bytes]:
    """The test PKI's certificates, and one without a key identifier extension."""
    from support.cmscheck import self_signed
    from support.infra import pki_certificate

    labels = ("root-ca", "interm-ca", "tsa", "ocsp-interm", "signer-rsa2048", "signer-vn")
    bare, _key = self_signed("Không có SKI")
    return [*(pki_certificate(label) for label in labels), bare]


def test_certificate_facts_are_asn1cryptos_own() -> None:
    """Each remembered fact equals what asn1crypto computes on a fresh copy,
    the first time (computed) and the second (remembered)."""
    from asn1crypto import x509

    patches.install()

    def original(obj: Any, attr: str) -> Any:
        return type(obj).__dict__[attr].fget.__wrapped_original__(obj)

    ders = _test_certificates()
    for _ in range(2):
        for der in ders:
            fresh, mine = x509.Certificate.load(der), x509.Certificate.load(der)
            assert mine.key_identifier == original(fresh, "key_identifier")
            assert mine.issuer_serial == original(fresh, "issuer_serial")
            assert mine.subject.hashable == original(fresh.subject, "hashable")
            assert mine.issuer.hashable == original(fresh.issuer, "hashable")
            assert mine.public_key.sha1 == original(fresh.public_key, "sha1")
    assert x509.Certificate.load(ders[-1]).key_identifier is None


def test_serial_first_signer_match_answers_as_pyhanko() -> None:
    """Every (issuer and serial, certificate) pair gets pyHanko's own answer,
    among them an issuer encoded otherwise (PrintableString, upper case) that
    RFC 5280 still calls equal, and a serial shared under another issuer."""
    from asn1crypto import cms, tsp, x509
    from pyhanko.sign import general

    patches.install()
    patched = general.match_issuer_serial
    original = patched.__wrapped_original__  # type: ignore[attr-defined]
    certs = [x509.Certificate.load(der) for der in _test_certificates()]
    interm = certs[1]  # issued by the root; the root and the TSA share a serial
    shouted = x509.Name.build(
        {k: str(v).upper() for k, v in interm.issuer.native.items()}, use_printable=True
    )
    assert shouted.dump() != interm.issuer.dump() and shouted == interm.issuer
    ids = [
        cms.IssuerAndSerialNumber({"issuer": c.issuer, "serial_number": c.serial_number})
        for c in certs
    ]
    ids.append(
        cms.IssuerAndSerialNumber({"issuer": shouted, "serial_number": interm.serial_number})
    )
    ids.append(
        cms.IssuerAndSerialNumber(
            {"issuer": certs[-1].subject, "serial_number": interm.serial_number}
        )
    )
    # and as an ESS certificate identifier names them: in a tagged GeneralName
    ids += [
        tsp.IssuerSerial(
            {
                "issuer": [x509.GeneralName({"directory_name": issuer})],
                "serial_number": serial,
            }
        )
        for issuer, serial in [(c.issuer, c.serial_number) for c in certs]
        + [(shouted, interm.serial_number), (certs[-1].subject, interm.serial_number)]
    ]
    for _ in range(2):  # the second time from what was remembered
        answers = [(patched(i, c), original(i, c)) for i in ids for c in certs]
        assert all(mine == theirs for mine, theirs in answers)
        # each its own, and the shouted one, in both forms
        assert sum(mine for mine, _ in answers) == 2 * (len(certs) + 1)


def test_serial_first_remembers_a_matching_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked again about the same issuer and serial, the answer comes from
    memory; another serial is refused without asking."""
    from asn1crypto import tsp, x509

    monkeypatch.setattr(patches, "_MATCHES", {})
    calls: list[bool] = []

    def original(expected: Any, cert: Any) -> bool:
        calls.append(True)
        return True

    match = patches.serial_first(original)
    cert, other = (x509.Certificate.load(der) for der in _test_certificates()[1:3])
    ess = tsp.IssuerSerial(
        {
            "issuer": [x509.GeneralName({"directory_name": cert.issuer})],
            "serial_number": cert.serial_number,
        }
    )
    assert match(ess, cert) and match(ess, x509.Certificate.load(cert.dump()))
    assert len(calls) == 1
    assert other.serial_number != cert.serial_number and not match(ess, other)
    assert len(calls) == 1


def test_certificate_facts_when_the_cache_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its limit the cache stores nothing more and still answers right."""
    from asn1crypto import x509

    patches.install()
    monkeypatch.setattr(patches, "_FACTS", {})
    monkeypatch.setattr(patches, "_FACTS_LIMIT", 1)
    der = _test_certificates()[-1]
    first, second = x509.Certificate.load(der), x509.Certificate.load(der)
    assert (first.issuer_serial, first.subject.hashable) == (
        second.issuer_serial,
        second.subject.hashable,
    )
    assert len(patches._FACTS) == 1


def test_certificate_facts_kept_on_the_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked again, a certificate answers from itself: no new encoding (a
    parsed-through certificate re-encodes slowly), the same answer."""
    from asn1crypto import x509

    patches.install()
    der = _test_certificates()[0]
    cert = x509.Certificate.load(der)
    answers = (cert.issuer_serial, cert.key_identifier, cert.subject.hashable)
    monkeypatch.setattr(patches, "_FACTS", {})
    encoded: list[bytes] = []
    dump = cert.dump

    def counted(force: bool = False) -> bytes:
        encoded.append(b"")
        return bytes(dump(force))

    monkeypatch.setattr(cert, "dump", counted)
    assert (cert.issuer_serial, cert.key_identifier, cert.subject.hashable) == answers
    assert encoded == []
    fresh = x509.Certificate.load(der)
    assert (fresh.issuer_serial, fresh.key_identifier, fresh.subject.hashable) == answers


# ------------------------------------------------------------ PDF tokens

# Fragments of PDF syntax, the odd ones included: escapes and bytes a name
# refuses, comments, a vertical tab (whitespace to Python, not to PDF),
# references, numbers pyHanko reads as one token ("1,5", "+-"), nesting.
_FRAGMENTS = (
    *(" ", "\n", "\r\n", "\t", "\f", "\x00", "\x0b", "  ", "% note\n"),
    *("0", "7", "-3", "+4", "250", "007", ".5", "5.", "-0.25", "1,5", "+-", "1.2.3", "99999"),
    *("[", "]", "[ ", " ]", "<<", ">>", "1 0 R", "12 0 R ", "0 0 R", "3 1 R"),
    *("/Name", "/A#20B", "/A#2", "/Ab#zz", "/\xe9t\xe9", "/", "/W", "/Type /Font"),
    *("(text)", "(a(b)c)", "<0A1b>", "true", "false", "null", "R", "e3", "{", "}"),
    *("/A 1", "/A 2", "/Length 3", ">>stream\nabc\nendstream", ">x", "/A\x01", "/A\x80"),
    *("12345678901234567 0 R", "1 0\x0bR", "1\x0b0 R", "4 0 Rx", "5 0 R/", "<< /K [ 1 0 R ] >>"),
)


def _tokens_reader():  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader

    from support.infra import FIXTURES

    sample = FIXTURES / "samples" / "decision.pdf"
    reader = PdfFileReader(io.BytesIO(sample.read_bytes()))
    return generic.Reference(1, 0, reader)


def _shape(value: Any, ref: Any) -> Any:
    """A parsed object as plain data: type, value, and whether every part
    knows the object it was read from."""
    from pyhanko.pdf_utils import generic

    owned = value.container_ref is ref
    if isinstance(value, generic.DictionaryObject):
        inner: Any = [(str(k), k.container_ref, _shape(value.raw_get(k), ref)) for k in value]
        if isinstance(value, generic.StreamObject):
            inner.append(value.encoded_data)
    elif isinstance(value, generic.ArrayObject):
        inner = [_shape(value.raw_get(i), ref) for i in range(len(value))]
    elif isinstance(value, generic.IndirectObject):
        inner = (value.idnum, value.generation)
    elif isinstance(value, (generic.TextStringObject, generic.ByteStringObject)):
        inner = value.original_bytes
    elif isinstance(value, generic.NullObject):
        inner = None
    elif isinstance(value, generic.BooleanObject):
        inner = bool(value.value)
    elif isinstance(value, generic.OperatorLiteral):
        inner = value.literal
    else:
        inner = str(value)
    return type(value).__name__, inner, owned


def _parse(data: bytes, ref: Any, *, fast: bool, content: bool = False) -> Any:
    """``read_object`` on ``data`` with pyHanko's own tokens or signkit's
    (``content``: as in a page's content stream): the shape of the result or
    the error, and where the stream was left."""
    from pyhanko.pdf_utils import generic, misc

    patches.install()
    names = (
        (misc, "read_non_whitespace"),
        (generic, "read_non_whitespace"),
        (misc, "read_until_delimiter"),
        (generic, "read_until_delimiter"),
        (generic, "_decode_name"),
    )
    saved = [getattr(module, name) for module, name in names]
    readers = (generic.ArrayObject, generic.DictionaryObject)
    saved_readers = [cls.__dict__["read_from_stream"] for cls in readers]
    if not fast:
        for (module, name), current in zip(names, saved, strict=True):
            setattr(module, name, current.__wrapped_original__)
        for cls, reader in zip(readers, saved_readers, strict=True):
            cls.read_from_stream = staticmethod(reader.__func__.__wrapped_original__)
    stream = io.BytesIO(data)
    mode = generic.ContentOpReading.GRAPHIC_OPS if content else generic.ContentOpReading.NO
    try:
        result: Any = _shape(generic.read_object(stream, ref, in_content_stream=mode), ref)
        return result, stream.tell()
    except Exception as exc:
        return (type(exc).__name__, str(exc)), None
    finally:
        for (module, name), current in zip(names, saved, strict=True):
            setattr(module, name, current)
        for cls, reader in zip(readers, saved_readers, strict=True):
            cls.read_from_stream = reader


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=40))
def test_fast_pdf_tokens_read_as_pyhanko(fragments: list[str]) -> None:
    """Any object, well formed or not: the same value, the same parts, the
    same error, and the parser left at the same byte."""
    ref = _tokens_reader()
    joined = "".join(fragments)
    spaced = " ".join(fragments)
    for data in (joined, f"[{spaced}]", f"[{joined}]", f"<< /W {joined}>>", f"<< {spaced} >>"):
        raw = data.encode("latin-1")
        assert _parse(raw, ref, fast=True) == _parse(raw, ref, fast=False), raw
        assert _parse(raw, ref, fast=True, content=True) == _parse(
            raw, ref, fast=False, content=True
        ), raw


@pytest.mark.parametrize(
    "data",
    [
        b"[ 3 [ 250 ] 11 [ 333 333 ] 15 [ 250 333.5 -.5 5. ] ] >>",  # a font's widths
        b"[" + b" ".join(b"%d" % (i * 7) for i in range(600)) + b"]",  # past the first window
        b"[" + b" ".join(b"%d" % i for i in range(20000)) + b"]",  # past every window
        b"[" * 40 + b"1" + b"]" * 40,  # deeper than the fast path goes
        b"[ 1 2 % a comment\n 3 ]",
        b"[ 1\x0b2 ]",
        b"[ 1 0 R 2 ]",
        b"[ 1 2",
        b"[ 1,5 2 ]",
        b"[ 1.2.3 ]",
        b"[ +- 1 ]",
        b"[ 1 2e3 ]",
        b"[ 1\x0b 2 ]",
        b"/Name% comment\n",
        b"[ <0A1> < 0a 1 > <> <0g> ]",
        b"<< /S (a\\)b) /T (x) /U (\r\n) >>",
        b"[ true false null truex ]",
        b"[ (a\\nb) (c\\051) ]",
        b"[ (Hello) -250 (World) 1 0 R ] TJ",
        b"<< /A true/B null/C false>>",
        b"<< /Length 3 >>\nstream\nabc\nendstream",
        b"<< /Length 4 >>stream\r\nabc\nendstream",
        b"<< /A << /B [ 1 0 R (s) ] >> /C [ << /D 2 >> ] >> trailer",
        b"[ 1 2 ",
        b"[]",
        b"/A#20B /C",
        b"/plain",
        b"   \n\x00 /after-whitespace",
        b"/" + b"N" * 200 + b" /next",
    ],
)
def test_fast_pdf_tokens_edges(data: bytes) -> None:
    ref = _tokens_reader()
    assert _parse(data, ref, fast=True) == _parse(data, ref, fast=False)
    # and as a page's content stream has them (no references there)
    assert _parse(data, ref, fast=True, content=True) == _parse(data, ref, fast=False, content=True)


def test_fast_pdf_tokens_ask_for_the_handler_as_pyhanko() -> None:
    """Every dictionary asks its container for the PDF handler when it opens,
    nested or not, as pyHanko's reader does (a container that cannot answer
    fails the same way)."""

    class NoHandler:
        def get_pdf_handler(self) -> Any:
            raise LookupError("no handler here")

    for data in (b"[ 1 << >> ]", b"<< /A 1 >>", b"[ [ 2 ] << /B << >> >> ]"):
        fast = _parse(data, NoHandler(), fast=True)
        assert fast == _parse(data, NoHandler(), fast=False)
        assert fast[0] == ("LookupError", "no handler here")


def test_fast_pdf_tokens_scan_a_declined_object_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deeply nested object the one-pass reader declines (here a comment
    at its heart) is read by pyHanko, inside as well: it is not scanned
    again at every level, so a hostile nesting costs one scan, not one per
    level."""
    from pyhanko.pdf_utils import generic

    patches.install()
    ref = _tokens_reader()
    scans: list[int] = []
    scan = patches._simple_object

    def counted(block: bytes, container_ref: Any, at_end: bool) -> Any:
        scans.append(len(block))
        return scan(block, container_ref, at_end)

    monkeypatch.setattr(patches, "_simple_object", counted)
    data = b"[" * 250 + b"1 % a comment\n" + b"]" * 250
    value = generic.read_object(io.BytesIO(data), ref)
    assert len(scans) == 1
    for _ in range(249):
        value = value[0]
    assert value == [1]
    assert _parse(data, ref, fast=True) == _parse(data, ref, fast=False)


def test_fast_pdf_tokens_take_the_fast_path() -> None:
    """A font's widths are read without pyHanko's array reader; a name
    without escapes without its decoder."""
    from pyhanko.pdf_utils import generic

    ref = _tokens_reader()
    calls: list[str] = []

    def array(stream: Any, container_ref: Any, *args: Any, **options: Any) -> Any:
        calls.append("array")
        return generic.ArrayObject()

    def name(data: bytes) -> Any:
        calls.append("name")
        return generic.NameObject("/x")

    widths = patches.read_array(io.BytesIO(b"[ 3 [ 250 ] 11 [ 333 333 ] ]"), ref, original=array)
    assert [int(w) if not isinstance(w, list) else [int(x) for x in w] for w in widths] == [
        3,
        [250],
        11,
        [333, 333],
    ]
    assert patches.decode_name(b"Type", original=name) == "/Type"
    assert calls == []
    patches.read_array(io.BytesIO(b"[ (a\\) b) ]"), ref, original=array)
    patches.decode_name(b"A#20B", original=name)
    assert calls == ["array", "name"]


# ------------------------------------------------------------ shared certificates


def test_shared_certificates_one_object_per_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from asn1crypto import x509

    monkeypatch.setattr(patches, "_SHARED", {})
    ders = _test_certificates()
    first = [patches.shared_certificate(x509.Certificate.load(der)) for der in ders]
    again = [patches.shared_certificate(x509.Certificate.load(der)) for der in ders]
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert len({id(cert) for cert in first}) == len(ders)
    assert [cert.dump() for cert in again] == ders
    name = x509.Name.build({"common_name": "not a certificate"})
    assert patches.shared_certificate(name) is name


def test_shared_certificates_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    from asn1crypto import x509

    monkeypatch.setattr(patches, "_SHARED", {})
    monkeypatch.setattr(patches, "_SHARED_LIMIT", 2)
    ders = _test_certificates()
    seen = [x509.Certificate.load(der) for der in ders]
    assert all(patches.shared_certificate(c) is c for c in seen)
    later = [patches.shared_certificate(x509.Certificate.load(der)) for der in ders]
    assert later[0] is seen[0] and later[1] is seen[1]
    assert all(a is not b for a, b in zip(later[2:], seen[2:], strict=True))
    assert [cert.dump() for cert in later] == ders


def _two_documents_signed_data() -> list[Any]:
    """The same CMS SignedData (a signer and its chain), parsed twice, as two
    documents signed by one clerk are."""
    from asn1crypto import cms, x509

    from support.infra import pki_certificate

    chain = [
        x509.Certificate.load(pki_certificate(label))
        for label in ("interm-ca", "signer-rsa2048", "root-ca")
    ]
    signer = chain[1]
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "data"},
            "certificates": chain,
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": {
                        "issuer_and_serial_number": {
                            "issuer": signer.issuer,
                            "serial_number": signer.serial_number,
                        }
                    },
                    "digest_algorithm": {"algorithm": "sha256"},
                    "signature_algorithm": {"algorithm": "sha256_rsa"},
                    "signature": b"s" * 256,
                }
            ],
        }
    )
    der = cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()
    return [cms.ContentInfo.load(der)["content"] for _ in range(2)]


def test_pyhanko_sees_one_object_per_certificate() -> None:
    """pyHanko's signer lookup and the path builder's registry get the first
    document's certificate objects for the second document's copies."""
    from pyhanko.sign import general
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from support.infra import pki_certificate

    patches.install()
    one, two = (general.extract_certificate_info(sd) for sd in _two_documents_signed_data())
    assert one.signer_cert is two.signer_cert
    assert one.signer_cert.dump() == pki_certificate("signer-rsa2048")
    assert all(a is b for a, b in zip(one.other_certs, two.other_certs, strict=True))
    stores = [SimpleCertificateStore(), SimpleCertificateStore()]
    for store, sd in zip(stores, _two_documents_signed_data(), strict=True):
        store.register_multiple(c.chosen for c in sd["certificates"])
    assert [id(c) for c in stores[0]] == [id(c) for c in stores[1]]
