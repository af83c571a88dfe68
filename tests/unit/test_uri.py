"""RFC 7512 pkcs11: URI parsing."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from signkit.errors import UsageError
from signkit.tokens.model import KeySelector
from signkit.tokens.uri import merge_selectors, parse_pkcs11_uri


def test_rfc7512_examples() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
        "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;"
        "type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial="
        "?module-path=/usr/lib/p11.so"
    )
    assert uri.selector.token_label == "The Software PKCS#11 Softtoken"
    assert uri.selector.key_label == "my-certificate"
    assert uri.selector.key_id == bytes.fromhex("69953e5cf4bdec91")
    assert uri.selector.token_serial == ""
    assert uri.module_path == "/usr/lib/p11.so"
    assert uri.object_type == "cert"
    # every attribute narrows the selection; none is parsed and then dropped
    assert uri.selector.token_manufacturer == "Snake Oil, Inc."
    assert uri.selector.token_model == "1.0"


def test_slot_and_library_attributes_become_criteria() -> None:
    sel = parse_pkcs11_uri(
        "pkcs11:slot-description=Reader%201;slot-manufacturer=ACS;"
        "library-manufacturer=IBM;library-description=Meta%20PKCS11%20LIBRARY;"
        "library-version=3"
    ).selector
    assert (sel.slot_description, sel.slot_manufacturer) == ("Reader 1", "ACS")
    assert sel.library_manufacturer == "IBM" and sel.library_version == "3"
    library = {"manufacturer": "IBM", "description": "Meta PKCS11 LIBRARY"}
    assert sel.library_mismatch({**library, "library_version": "3.0"}) is None
    assert "library-version is '3.8'" in str(
        sel.library_mismatch({**library, "library_version": "3.8"})
    )
    assert "library-manufacturer is 'SoftHSM'" in str(
        sel.library_mismatch({**library, "manufacturer": "SoftHSM", "library_version": "3.0"})
    )
    assert "library-manufacturer='IBM'" in sel.describe()


def test_utf8_label_and_slot() -> None:
    uri = parse_pkcs11_uri("pkcs11:slot-id=7;object=Nguy%E1%BB%85n")
    assert uri.selector.slot == 7
    assert uri.selector.key_label == "Nguyễn"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file:foo", "not a pkcs11: URI"),
        ("pkcs11:token", "has no value"),
        ("pkcs11:colour=red", "unknown or misplaced attribute 'colour'"),
        ("pkcs11:object=a%zzb", "bad percent-encoding in 'object'"),
        ("pkcs11:object=100%", "bad percent-encoding in 'object'"),
        ("pkcs11:token=a;token=b", "given twice"),
        ("pkcs11:slot-id=x", "not a number"),
        ("pkcs11:object=%FF", "not UTF-8"),
        ("pkcs11:library-version=three", "not M or M.N"),
        ("pkcs11:token=t;type=secret-key", "cannot sign"),
        ("pkcs11:token=t?module-name=softhsm2", "module-name is not supported"),
    ],
)
def test_bad_uris(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_pkcs11_uri(text)


def test_pin_value_is_refused() -> None:
    with pytest.raises(UsageError) as err:
        parse_pkcs11_uri("pkcs11:token=t?pin-value=1234")
    assert "1234" not in str(err.value) and "command line" in str(err.value)


PIN = "904417"
SOURCE = "/run/user/pin-904417"


def everything_said(err: BaseException) -> str:
    """Every text an error can show: message, subject, hint, repr, its causes."""
    texts = []
    seen: BaseException | None = err
    while seen is not None:
        texts += [str(seen), repr(seen), str(getattr(seen, "hint", "")), str(seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # pin-value anywhere, however malformed the rest: refused without a quote
        (f"pkcs11:token=a;token=b?pin-value={PIN}", "would put the PIN on the command line"),
        (f"pkcs11:token=a?pin-value={PIN}&pin-value={PIN}", "would put the PIN"),
        (f"pkcs11:pin-value={PIN}", "would put the PIN"),
        (f"pkcs11:token=a?PIN-VALUE={PIN}", "would put the PIN"),
        (f"pkcs11:token=a?pin%2Dvalue={PIN}", "would put the PIN"),
        (f"pkcs11:token=a?pin-value={PIN}%zz", "would put the PIN"),
        (f"pkcs11:colour=red;slot-id=x?pin-value={PIN}", "would put the PIN"),
        (f"pkcs11:object=%FF?module-path=/x.so&pin-value={PIN}", "would put the PIN"),
        # pin-source (where the PIN is) on every other error path
        (f"pkcs11:token=a;token=b?pin-source={SOURCE}", "attribute 'token' given twice"),
        (f"pkcs11:token=a?pin-source={SOURCE}&pin-source={SOURCE}", "'pin-source' given twice"),
        (f"pkcs11:pin-source={SOURCE}", "misplaced attribute 'pin-source'"),
        (f"pkcs11:object=%zz?pin-source={SOURCE}", "bad percent-encoding in 'object'"),
        (f"pkcs11:token=a?pin-source={SOURCE}%zz", "bad percent-encoding in 'pin-source'"),
        (f"pkcs11:colour=red?pin-source={SOURCE}", "unknown or misplaced attribute 'colour'"),
        (f"pkcs11:slot-id=x?pin-source={SOURCE}", "slot-id 'x' is not a number"),
        (f"pkcs11:object=%FF?pin-source={SOURCE}", "attribute 'object' is not UTF-8"),
        (f"pkcs11:token?pin-source={SOURCE}", "attribute 'token' has no value"),
        (f"pkcs11:token=a?module-path=/p11.so&pin-source={SOURCE}&{PIN}", "has no value"),
        (f"pkcs11:token=a?pin-source={SOURCE}&{PIN}=1", "unknown or misplaced attribute"),
        (f"pkcs11:token=a?pin-src={PIN}", "unknown or misplaced attribute"),
        (f"pkcs11:token=a?module-name=p11&pin-source={SOURCE}", "module-name is not supported"),
        (f"pkcs11:type=secret-key?pin-source={SOURCE}", "names an object that cannot sign"),
        (f"pkcs11:library-version=x?pin-source={SOURCE}", "library-version 'x' is not M"),
        # a PIN pasted where the URI should be
        (PIN, "not a pkcs11: URI"),
        (f"file:{SOURCE}", "not a pkcs11: URI"),
    ],
)
def test_no_error_quotes_a_pin_or_its_source(text: str, message: str) -> None:
    """Regression: a malformed URI was quoted whole, pin-value included, in
    its error ("attribute 'token' given twice")."""
    with pytest.raises(UsageError, match=message) as err:
        parse_pkcs11_uri(text)
    said = everything_said(err.value)
    assert PIN not in said and SOURCE not in said and "904417" not in said, said


def test_redacted_uri_keeps_what_helps() -> None:
    with pytest.raises(UsageError) as err:
        parse_pkcs11_uri(f"pkcs11:token=VNPT;token=B?module-path=/x.so&pin-source={SOURCE}")
    assert err.value.subject == "pkcs11:token=VNPT;token=B?module-path=/x.so&***"


@given(st.text(), st.from_regex(r"[0-9]{6,8}", fullmatch=True))
def test_no_uri_error_ever_shows_the_pin(rest: str, pin: str) -> None:
    for text in (f"pkcs11:{rest}?pin-value={pin}", f"pkcs11:{rest}&pin-source={pin}"):
        assume(pin not in unquote(rest))
        try:
            parse_pkcs11_uri(text)
        except UsageError as exc:
            assert pin not in everything_said(exc)


def test_vendor_attributes_are_ignored() -> None:
    assert parse_pkcs11_uri("pkcs11:token=t;x-vendor=1").selector.token_label == "t"


def test_merge_conflicts() -> None:
    a = KeySelector(token_label="a", key_label="k")
    assert merge_selectors(a, KeySelector(key_label="k", slot=3), what="x").slot == 3
    with pytest.raises(UsageError, match="different values"):
        merge_selectors(a, KeySelector(token_label="b"), what="x")


@given(st.text())
def test_parser_never_crashes(text: str) -> None:
    try:
        parse_pkcs11_uri("pkcs11:" + text)
    except UsageError:
        pass
