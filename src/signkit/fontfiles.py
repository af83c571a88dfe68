"""Where the TrueType fonts for visible signatures are (no PDF imports here)."""

from __future__ import annotations

import os

# Preferred serif fonts for Vietnamese official documents, then free
# metric-compatible fallbacks (Decree 30 asks for Times New Roman).
SERIF_FONTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Times New Roman",
        (
            "/usr/share/fonts/truetype/msttcorefonts/Times_New_Roman.ttf",
            "/usr/share/fonts/truetype/msttcorefonts/times.ttf",
            "/usr/share/fonts/TTF/times.ttf",
        ),
    ),
    (
        "Liberation Serif",
        (
            "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
        ),
    ),
    ("DejaVu Serif", ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",)),
)


# The same families' italics: the place-and-date line of a Decree 30 document
# is set in italics, and the date written into it must match.
SERIF_ITALIC_FONTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Times New Roman",
        (
            "/usr/share/fonts/truetype/msttcorefonts/Times_New_Roman_Italic.ttf",
            "/usr/share/fonts/truetype/msttcorefonts/timesi.ttf",
            "/usr/share/fonts/TTF/timesi.ttf",
        ),
    ),
    (
        "Liberation Serif",
        (
            "/usr/share/fonts/truetype/liberation2/LiberationSerif-Italic.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSerif-Italic.ttf",
        ),
    ),
    ("DejaVu Serif", ("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Italic.ttf",)),
)


FONT_ROOT_ENV = "SIGNKIT_FONT_ROOT"
"""A directory that stands for / when the font paths above are looked up. The
test suite points it at a directory of its own so that which fonts are
"installed" is the test's choice, not the host's; unset, the paths are used
as they are."""


def find_serif_font(*, italic: bool = False) -> tuple[str, str]:
    """(family, path) of the best available serif font (or its italic)."""
    root = os.environ.get(FONT_ROOT_ENV, "")
    for family, paths in SERIF_ITALIC_FONTS if italic else SERIF_FONTS:
        for path in paths:
            found = root + path if root else path
            if os.path.exists(found):
                return family, found
    raise FileNotFoundError("no serif TrueType font found (install fonts-liberation2)")
