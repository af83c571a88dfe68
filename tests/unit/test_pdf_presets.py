"""Preset resolution: presets fill what is unset, and enforce their rules."""

from __future__ import annotations

import pytest

from signkit.errors import UsageError
from signkit.formats.pdf import PdfDocOptions, resolve_options
from signkit.formats.pdf.presets import PRESETS, get_preset


def test_attachment_fills_place_text_and_font() -> None:
    opts = resolve_options(PdfDocOptions(), {"preset": "nd30-attachment", "doc_number": "5/QĐ"})
    assert (opts.page, opts.corner, opts.font_size, opts.field) == (
        "1",
        "top-right",
        10.0,
        "ND30-Attachment",
    )
    assert opts.rect is not None and opts.visible and "{doc_number}" in (opts.text or "")


def test_user_values_win_over_the_preset() -> None:
    opts = resolve_options(
        PdfDocOptions(rect="5,5,70,14", font_size=11),
        {"preset": "nd30-attachment", "doc-number": "5/QĐ"},
    )
    assert opts.rect == "5,5,70,14" and opts.font_size == 11


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preset": "nd30-attachment"}, "needs --doc-number"),
        ({"preset": "nd30-org", "image": __file__}, "needs --seal-mm"),
        ({"preset": "nd30-person", "image": __file__}, "needs --anchor-text"),
        ({"preset": "nd30-copy", "copy_form": "BẢN SAO"}, "SAO Y, SAO LỤC, TRÍCH SAO"),
        ({"preset": "nd30-org", "image": __file__, "seal_mm": "500"}, "5 to 100"),
        (
            {"preset": "nd30-person", "image": __file__, "rect": "1,1,9,9", "certify": "yes"},
            "does not allow --certify",
        ),
        (
            {"preset": "nd30-attachment", "doc_number": "1", "image": __file__},
            "does not allow --image",
        ),
        ({"preset": "no-such"}, "unknown PDF preset"),
    ],
)
def test_rules(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        resolve_options(PdfDocOptions(), overrides)


def test_copy_form_is_normalised() -> None:
    opts = resolve_options(PdfDocOptions(), {"preset": "nd30-copy", "copy_form": "trích sao"})
    assert opts.copy_form == "TRÍCH SAO"


def test_every_preset_names_its_own_field() -> None:
    """Resume is per field: two presets sharing one would skip each other
    (a composite preset signs through the presets it names)."""
    names = [get_preset(n).options.get("field") for n in PRESETS if not get_preset(n).passes]
    assert all(names) and len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("day", "month", "expected"),
    [(5, 2, ("05", "02")), (12, 1, ("12", "01")), (9, 3, ("09", "3")), (27, 11, ("27", "11"))],
)
def test_dates_as_decree_30_writes_them(day: int, month: int, expected: tuple[str, str]) -> None:
    """Days under 10 and months 1 and 2 take a leading zero; other months do not."""
    from signkit.formats.pdf.decree30 import day_text, month_text

    assert (day_text(day), month_text(month)) == expected


def test_composite_preset_needs_the_number() -> None:
    with pytest.raises(UsageError, match="needs --doc-number"):
        resolve_options(PdfDocOptions(), {"preset": "nd30-number-date"})


@pytest.fixture
def user_config(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from signkit.formats.pdf import presets as pdf_presets

    path = tmp_path / "config.toml"
    monkeypatch.setenv("SIGNKIT_CONFIG", str(path))
    pdf_presets.user_presets.cache_clear()
    yield path
    pdf_presets.user_presets.cache_clear()


def test_a_user_preset_from_the_config(user_config) -> None:  # type: ignore[no-untyped-def]
    user_config.write_text(
        """
[pdf-presets.so-van-ban]
summary = "our number stamp"
placement = "corner"
requires = ["doc_number"]
forbids = ["image"]

[pdf-presets.so-van-ban.options]
text = "Số: {doc_number}"
page = "1"
rect = "15,12,60,10"
corner = "top-left"
field = "So-Van-Ban"
""",
        encoding="utf-8",
    )
    opts = resolve_options(PdfDocOptions(), {"preset": "so-van-ban", "doc_number": "7/UBND"})
    assert (opts.rect, opts.corner, opts.field, opts.text) == (
        "15,12,60,10",
        "top-left",
        "So-Van-Ban",
        "Số: {doc_number}",
    )
    with pytest.raises(UsageError, match="needs --doc-number"):
        resolve_options(PdfDocOptions(), {"preset": "so-van-ban"})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[pdf-presets.nd30-org]\nplacement = "corner"\n', "redefine a built-in"),
        ('[pdf-presets.x]\ncolour = "red"\n', "unknown key"),
        ('[pdf-presets.x]\nplacement = "anywhere"\n', "placement must be one of"),
    ],
)
def test_bad_user_presets_are_config_errors(user_config, table: str, message: str) -> None:  # type: ignore[no-untyped-def]
    from signkit.errors import ConfigError

    user_config.write_text(table, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        resolve_options(PdfDocOptions(), {"preset": "x"})


def test_a_user_preset_option_must_exist(user_config) -> None:  # type: ignore[no-untyped-def]
    from signkit.errors import ConfigError

    user_config.write_text(
        '[pdf-presets.x]\nplacement = "corner"\noptions = { colour = "red" }\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        resolve_options(PdfDocOptions(), {"preset": "x"})
