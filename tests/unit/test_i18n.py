"""The message catalogue: matching, placeholders, language choice, completeness,
and the compiled catalogue the build makes from the translators' .po file."""

from __future__ import annotations

import gettext
import re
from datetime import datetime, timedelta, timezone

import pytest
from babel.messages.pofile import PoFileParser, read_po

from signkit import i18n
from signkit.i18n import Catalogue, choose_language
from support.messages import SRC, catalogue_entries, messages

PO = SRC / "locale" / "vi.po"


def test_templates_carry_their_values() -> None:
    cat = Catalogue(
        {
            "page {page} does not exist ({count} pages)": "trang {page} không có ({count} trang)",
            "cannot open ({exc.strerror})": "không mở được ({exc.strerror})",
            "Permission denied": "Không có quyền",
            "plain": "thường",
        }
    )
    assert cat.translate("page 9 does not exist (2 pages)") == "trang 9 không có (2 trang)"
    # a value that is itself a known message is translated too
    assert cat.translate("cannot open (Permission denied)") == "không mở được (Không có quyền)"
    # "subject: message"
    assert cat.translate("/tmp/a.pdf: plain") == "/tmp/a.pdf: thường"
    # unknown text comes back unchanged
    assert cat.translate("something else") == "something else"


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        (None, {"LANG": "vi_VN.UTF-8"}, "vi"),
        (None, {"LC_ALL": "en_US.UTF-8", "LANG": "vi_VN.UTF-8"}, "en"),
        (None, {"LC_MESSAGES": "vi_VN"}, "vi"),
        ("en", {"LANG": "vi_VN.UTF-8"}, "en"),
        ("vi", {}, "vi"),
        (None, {}, "en"),
    ],
)
def test_language_choice(option: str | None, env: dict[str, str], expected: str) -> None:
    assert choose_language(option, env) == expected


def test_every_message_in_the_code_has_a_vietnamese_translation() -> None:
    """A new message without a translation fails here: run
    `python tests/support/messages.py` for the stubs to fill in vi.po."""
    known = catalogue_entries()
    missing = [m for m in messages() if m not in known]
    assert not missing, missing[:20]


def test_translations_keep_their_placeholders() -> None:
    for msgid, msgstr in catalogue_entries().items():
        wanted = set(re.findall(r"\{[^{}]*\}", msgid))
        assert set(re.findall(r"\{[^{}]*\}", msgstr)) == wanted, (msgid, msgstr)


def test_no_message_is_translated_twice() -> None:
    """Translators append to vi.po: a msgid appended twice would keep only one
    of its translations, silently."""
    from babel.messages.catalog import Catalog

    catalog = Catalog(locale="vi")
    parser = PoFileParser(catalog, abort_invalid=True)
    with PO.open("rb") as fh:
        parser.parse(fh)
    assert catalog.mime_headers, "vi.po lost its header"
    assert parser.counter == len(catalog) + 1  # every entry, and the header


def test_the_compiled_catalogue_is_the_translators_file() -> None:
    """What gettext reads at run time (built by setup.py from vi.po) says what
    vi.po says: a stale build fails here (run ./dev setup)."""
    compiled = i18n.compiled_path("vi")
    assert compiled.is_file(), f"{compiled} missing: run ./dev setup (pip install -e .)"
    with compiled.open("rb") as fh:
        mo = gettext.GNUTranslations(fh)
    with PO.open("rb") as fh:
        po = read_po(fh, locale="vi")
    for message in po:
        if message.id and message.string and not message.fuzzy:
            assert mo.gettext(str(message.id)) == message.string, message.id
    assert i18n.catalogue("vi") is not None
    assert i18n.missing_catalogues() == []


def test_dates_follow_the_language() -> None:
    moment = datetime(2026, 3, 12, 9, 41, 7, tzinfo=timezone(timedelta(hours=7)))
    try:
        i18n.set_language("vi")
        assert i18n.format_datetime(moment) == "12/03/2026 09:41:07 +07:00"
        i18n.set_language("en")
        assert i18n.format_datetime(moment) == "2026-03-12T09:41:07+07:00"
    finally:
        i18n.set_language("en")


def test_a_template_of_punctuation_only_matches_nothing() -> None:
    """Regression: the code's msgid "{type(exc).__name__}: {str(exc)[:300]}"
    matched every "subject: reason" message, so `cert check` in Vietnamese
    read "chưa được xác minh (: signkit Test Issuing CA, Organization: …)"."""
    detail = 'Unable to build a validation path for the certificate "Common Name: Test CA'
    cat = Catalogue(
        {
            "{type(exc).__name__}: {str(exc)[:300]}": "{type(exc).__name__}: {str(exc)[:300]}",
            "chain not validated ({detail})": "chuỗi chứng thực chưa được xác minh ({detail})",
        }
    )
    assert cat.translate(f"chain not validated ({detail})") == "chuỗi chứng thực chưa được xác minh"
    assert cat.translate("ValueError: Common Name: Test CA") == "ValueError: Common Name: Test CA"
    real = i18n.load_catalogue("vi")
    assert real.translate(f"chain not validated ({detail})") == (
        "chuỗi chứng thực chưa được xác minh"
    )


def test_a_library_message_quoting_a_vietnamese_name_is_still_english() -> None:
    """Regression: pyHanko's message quotes the signer's subject ("Common Name:
    Trần Thị Bình"); being not ASCII, it passed for Vietnamese and reached the
    clerk inside a Vietnamese sentence. An OS error ("[Errno 111] Connection
    refused") is the system's English too. Both are shown with -v only."""
    cat = Catalogue(
        {
            "does not chain to a configured trust anchor ({detail})": (
                "không xây dựng được chuỗi chứng thực ({detail})"
            ),
            "TSA unreachable ({reason})": "không kết nối được TSA ({reason})",
        }
    )
    detail = (
        'Unable to build a validation path for the certificate "Common Name: Trần Thị Bình"'
        ' - no issuer matching "Common Name: Root CA, Organization: Ủy ban" was found'
    )
    message = f"does not chain to a configured trust anchor ({detail})"
    try:
        assert cat.translate(message) == "không xây dựng được chuỗi chứng thực"
        assert cat.translate("TSA unreachable ([Errno 111] Connection refused)") == (
            "không kết nối được TSA"
        )
        i18n.show_details(True)
        assert cat.translate(message) == f"không xây dựng được chuỗi chứng thực ({detail})"
    finally:
        i18n.show_details(False)
    # a name of ours in quotes, and Vietnamese, are not English prose
    assert not i18n.foreign("'Trần Thị Bình' not found")
    assert not i18n.foreign("Ủy ban nhân dân tỉnh Nam Định")


def test_an_unknown_sentence_is_not_taken_apart_by_a_loose_template() -> None:
    """A message the catalogue does not know stays whole: a msgid that starts
    and ends with a value ("{path} signature {n}") matched any sentence with
    " signature " inside and left ", chữ ký thứ" of it."""
    real = i18n.load_catalogue("vi")
    unknown = "the room on page 2 is small for a signature image; it was shrunk, key 'x'"
    assert real.translate(unknown) == unknown
