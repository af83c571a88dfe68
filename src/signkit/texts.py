"""Text shaping for messages people read."""

from __future__ import annotations

import textwrap


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut between words with an
    ellipsis when it is longer (a reason cut mid-word reads as a typo)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    return textwrap.shorten(flat, width=width, placeholder=" …")
