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


def find_serif_font() -> tuple[str, str]:
    """(family, path) of the best available serif font."""
    for family, paths in SERIF_FONTS:
        for path in paths:
            if os.path.exists(path):
                return family, path
    raise FileNotFoundError("no serif TrueType font found (install fonts-liberation2)")
