"""The message catalogue: matching, placeholders, language choice, completeness."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from signkit import i18n
from signkit.i18n import choose_language, compile_catalogue, parse_po
from support.messages import SRC, messages

PO = (SRC / "locale" / "vi.po").read_text(encoding="utf-8")


def test_templates_carry_their_values() -> None:
    cat = compile_catalogue(
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


def test_po_parsing_handles_continuations_escapes_and_fuzzy() -> None:
    po = (
        'msgid ""\nmsgstr "Language: vi\\n"\n\n'
        'msgid "a \\"b\\""\nmsgstr ""\n"x "\n"y"\n\n'
        '#, fuzzy\nmsgid "c"\nmsgstr "not yet"\n\n'
        'msgid "d"\nmsgstr ""\n'
    )
    assert parse_po(po) == {'a "b"': "x y"}


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
    known = parse_po(PO)
    missing = [m for m in messages() if m not in known]
    assert not missing, missing[:20]


def test_translations_keep_their_placeholders() -> None:
    for msgid, msgstr in parse_po(PO).items():
        wanted = set(re.findall(r"\{[^{}]*\}", msgid))
        assert set(re.findall(r"\{[^{}]*\}", msgstr)) == wanted, (msgid, msgstr)


def test_dates_follow_the_language() -> None:
    moment = datetime(2026, 3, 12, 9, 41, 7, tzinfo=timezone(timedelta(hours=7)))
    try:
        i18n.set_language("vi")
        assert i18n.format_datetime(moment) == "12/03/2026 09:41:07 +07:00"
        i18n.set_language("en")
        assert i18n.format_datetime(moment) == "2026-03-12T09:41:07+07:00"
    finally:
        i18n.set_language("en")
