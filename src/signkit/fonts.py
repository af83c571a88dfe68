"""TrueType fonts for visible signatures, with Vietnamese coverage.

pyHanko 0.38 writes a CIDFont's /W widths (and descriptor metrics) in the
font's own units. For fonts with 2048 units per em (Times New Roman,
Liberation Serif, DejaVu) every glyph then advances about twice too far and
text spills out of its box. ``ScaledGlyphAccumulator`` rescales them to the
1000-unit glyph space PDF requires before the font is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.opentype import GlyphAccumulator, GlyphAccumulatorFactory

from signkit.fontfiles import find_serif_font

__all__ = ["ScaledGlyphAccumulator", "ScaledGlyphAccumulatorFactory", "find_serif_font"]

# fontTools reports every table it drops while subsetting; not a user's concern.
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)


class ScaledGlyphAccumulator(GlyphAccumulator):
    """A GlyphAccumulator whose written metrics are in 1000-unit glyph space."""

    def prepare_write(self) -> None:
        if not getattr(self, "_write_prepared", False) and self.units_per_em != 1000:
            k = 1000 / self.units_per_em
            self._glyphs = {g: (cid, round(w * k)) for g, (cid, w) in self._glyphs.items()}
            fd = self.cidfont_obj._font_descriptor
            for key in ("/Ascent", "/Descent", "/CapHeight"):
                if key in fd:
                    fd[generic.pdf_name(key)] = generic.NumberObject(round(int(fd[key]) * k))
            fd[generic.pdf_name("/FontBBox")] = generic.ArrayObject(
                [generic.NumberObject(round(int(v) * k)) for v in fd["/FontBBox"]]
            )
        super().prepare_write()


@dataclass(frozen=True)
class ScaledGlyphAccumulatorFactory(GlyphAccumulatorFactory):
    """Drop-in for GlyphAccumulatorFactory producing correctly scaled fonts."""

    def create_font_engine(self, writer: Any, obj_stream: Any = None) -> GlyphAccumulator:
        fh = Path(self.font_file).open("rb")
        if obj_stream is None and writer.stream_xrefs and self.create_objstream_if_needed:
            obj_stream = writer.prepare_object_stream()
        return ScaledGlyphAccumulator(
            writer=writer,
            font_handle=fh,
            font_size=self.font_size,
            ot_script_tag=self.ot_script_tag,
            ot_language_tag=self.ot_language_tag,
            writing_direction=self.writing_direction,
            bcp47_lang_code=self.bcp47_lang_code,
            obj_stream=obj_stream,
        )
