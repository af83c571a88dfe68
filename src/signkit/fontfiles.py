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


FONT_ROOT_ENV = "SIGNKIT_FONT_ROOT"
"""A directory that stands for / when the font paths above are looked up. The
test suite points it at a directory of its own so that which fonts are
"installed" is the test's choice, not the host's; unset, the paths are used
as they are."""


def find_serif_font() -> tuple[str, str]:
    """(family, path) of the best available serif font."""
    root = os.environ.get(FONT_ROOT_ENV, "")
    for family, paths in SERIF_FONTS:
        for path in paths:
            found = root + path if root else path
            if os.path.exists(found):
                return family, found
    raise FileNotFoundError("no serif TrueType font found (install fonts-liberation2)")
