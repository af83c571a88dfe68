"""Where a visible PDF signature goes and what it shows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from signkit.errors import UsageError

MM = 72 / 25.4
Corner = Literal["bottom-left", "top-left", "top-right", "bottom-right"]
CORNERS: tuple[str, ...] = ("bottom-left", "top-left", "top-right", "bottom-right")
DEFAULT_TEXT = "Ký bởi: {signer}\n{org}\nThời gian: {time}"


def parse_rect(text: str) -> tuple[float, float, float, float]:
    """'X,Y,W,H' in millimetres."""
    try:
        parts = [float(p) for p in text.replace(";", ",").split(",")]
    except ValueError:
        raise UsageError("--rect takes X,Y,WIDTH,HEIGHT in millimetres", subject=text) from None
    if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0:
        raise UsageError("--rect takes X,Y,WIDTH,HEIGHT in millimetres", subject=text)
    return parts[0], parts[1], parts[2], parts[3]


def place_rect(
    rect_mm: tuple[float, float, float, float],
    *,
    corner: str,
    cropbox: tuple[float, float, float, float],
    rotate: int,
) -> tuple[int, int, int, int]:
    """A box given in mm from a corner of the page as seen (CropBox, /Rotate
    honoured) to an (x1, y1, x2, y2) rectangle in unrotated user space."""
    x0, y0, x1, y1 = cropbox
    w, h = x1 - x0, y1 - y0
    rotate %= 360
    vis_w, vis_h = (h, w) if rotate in (90, 270) else (w, h)
    vx, vy, vw, vh = (v * MM for v in rect_mm)
    if corner in ("top-left", "top-right"):
        vy = vis_h - vy - vh
    if corner in ("top-right", "bottom-right"):
        vx = vis_w - vx - vw
    if rotate == 0:
        ux, uy, uw, uh = vx, vy, vw, vh
    elif rotate == 90:
        ux, uy, uw, uh = w - vy - vh, vx, vh, vw
    elif rotate == 180:
        ux, uy, uw, uh = w - vx - vw, h - vy - vh, vw, vh
    else:
        ux, uy, uw, uh = vy, h - vx - vw, vh, vw
    return (round(x0 + ux), round(y0 + uy), round(x0 + ux + uw), round(y0 + uy + uh))


@dataclass(frozen=True, kw_only=True)
class AppearanceValues:
    """Values for the text template placeholders."""

    signer: str
    org: str
    serial: str
    time: datetime
    reason: str
    location: str
    doc_number: str = ""
    copy_form: str = ""
    copy_org: str = ""

    def render(self, template: str) -> str:
        """Fill {signer}, {org}, {serial}, {time}, {reason}, {location},
        {doc_number}, {copy_form}, {copy_org}."""
        values = {
            "signer": self.signer,
            "org": self.org,
            "serial": self.serial,
            "time": iso_with_colon(self.time),
            "reason": self.reason,
            "location": self.location,
            "doc_number": self.doc_number,
            "copy_form": self.copy_form,
            "copy_org": self.copy_org or self.org,
        }
        try:
            return template.replace("\\n", "\n").format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(
                f"bad placeholder {exc} in the appearance text "
                "(use {signer}, {org}, {serial}, {time}, {reason}, {location}, "
                "{doc_number}, {copy_form}, {copy_org})",
                subject=template,
            ) from None


def iso_with_colon(moment: datetime) -> str:
    """ISO 8601 with a '+07:00'-style offset (strftime's %z gives '+0700')."""
    return moment.isoformat(timespec="seconds")


def stamp_style(
    *,
    text: str | None,
    image: str | None,
    layout_mode: str,
    font_path: str,
    font_size: float,
    box: tuple[int, int, int, int],
    rotate: int = 0,
) -> Any:
    """A pyHanko stamp style: text in an embedded subset font, PNG, or both,
    upright as the reader sees a page shown rotated by ``rotate`` degrees."""
    rotate %= 360
    if rotate:
        inner = stamp_style(
            text=text,
            image=image,
            layout_mode=layout_mode,
            font_path=font_path,
            font_size=font_size,
            box=_visual_box(box, rotate),
        )
        return _RotatedStyle(inner, rotate)
    from pyhanko.pdf_utils import layout
    from pyhanko.pdf_utils.images import PdfImage
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import StaticStampStyle, TextStampStyle

    from signkit.fonts import ScaledGlyphAccumulatorFactory

    mid = layout.AxisAlignment.ALIGN_MID
    if image and not text:
        # Image only (a handwritten signature, a seal): no text box at all.
        return StaticStampStyle(
            background=PdfImage(image),
            border_width=0,
            background_layout=layout.SimpleBoxLayoutRule(
                x_align=mid, y_align=mid, margins=layout.Margins.uniform(0)
            ),
        )

    # pyHanko applies %-interpolation to the stamp text.
    stamp_text = (text or "").replace("%", "%%")
    size = round(font_size)
    font = ScaledGlyphAccumulatorFactory(font_path, font_size=size)
    box_style = TextBoxStyle(font=font, font_size=size, leading=round(size * 1.25))
    kwargs: dict[str, Any] = {
        "stamp_text": stamp_text,
        "text_box_style": box_style,
        "border_width": 0,
    }
    half_w, half_h = (box[2] - box[0]) // 2, (box[3] - box[1]) // 2
    if image:
        kwargs["background"] = PdfImage(image)
        kwargs["background_opacity"] = 1.0
        if layout_mode == "stacked":
            kwargs["background_layout"] = layout.SimpleBoxLayoutRule(
                x_align=mid, y_align=mid, margins=layout.Margins(0, 0, 0, half_h)
            )
            kwargs["inner_content_layout"] = layout.SimpleBoxLayoutRule(
                x_align=mid, y_align=mid, margins=layout.Margins(2, 2, half_h, 2)
            )
        else:
            kwargs["background_layout"] = layout.SimpleBoxLayoutRule(
                x_align=mid, y_align=mid, margins=layout.Margins(0, half_w, 0, 0)
            )
            kwargs["inner_content_layout"] = layout.SimpleBoxLayoutRule(
                x_align=mid, y_align=mid, margins=layout.Margins(half_w, 2, 2, 2)
            )
    return TextStampStyle(**kwargs)


def _visual_box(box: tuple[int, int, int, int], rotate: int) -> tuple[int, int, int, int]:
    """The box with the width and height the reader sees."""
    x1, y1, x2, y2 = box
    if rotate in (90, 270):
        return x1, y1, x1 + (y2 - y1), y1 + (x2 - x1)
    return box


def rotated_style(style: Any, rotate: int) -> Any:
    """``style`` drawn upright on a page shown rotated by ``rotate`` degrees."""
    rotate %= 360
    return _RotatedStyle(style, rotate) if rotate else style


class _RotatedStyle:
    """Lays a stamp out in the page's visual orientation and turns it back.

    pyHanko draws appearances in unrotated user space, so on a page shown
    rotated (/Rotate 90, 180, 270) the text would read sideways. The content
    is laid out in a box of the visual size and the form XObject gets a
    /Matrix that turns it into user space; the widget's /Rect stays put.
    """

    def __init__(self, inner: Any, rotate: int) -> None:
        self.inner = inner
        self.rotate = rotate

    def create_stamp(self, writer: Any, box: Any, text_params: dict[str, Any]) -> Any:
        from pyhanko.pdf_utils import generic, layout

        if self.rotate in (90, 270):
            visual = layout.BoxConstraints(width=box.height, height=box.width)
        else:
            visual = layout.BoxConstraints(width=box.width, height=box.height)
        stamp = self.inner.create_stamp(writer, visual, text_params)
        vw, vh = visual.width, visual.height
        matrix = {
            90: (0, 1, -1, 0, vh, 0),
            180: (-1, 0, 0, -1, vw, vh),
            270: (0, -1, 1, 0, 0, vw),
        }[self.rotate]
        render_xobject = stamp.as_form_xobject

        def as_form_xobject() -> Any:
            xobject = render_xobject()
            xobject["/Matrix"] = generic.ArrayObject([generic.FloatObject(v) for v in matrix])
            return xobject

        stamp.as_form_xobject = as_form_xobject
        return stamp


def slots_style(
    *, slots: list[tuple[float, str]], font_path: str, font_size: float, baseline: float
) -> Any:
    """A stamp that writes short texts from given x positions of its box, on
    the printed line's baseline (``baseline`` points above the box's bottom):
    the number after "Số:", the day and month in "ngày … tháng … năm"."""
    from dataclasses import dataclass as _dataclass

    from pyhanko.pdf_utils import layout
    from pyhanko.pdf_utils.text import TextBox, TextBoxStyle
    from pyhanko.stamp import BaseStamp, BaseStampStyle

    from signkit.fonts import ScaledGlyphAccumulatorFactory

    # pyHanko writes whole-point sizes (%d Tf): a printed line of 13.5 pt gets
    # 14 pt text scaled by 13.5/14
    size = max(1, round(font_size))
    scale = font_size / size
    box_style = TextBoxStyle(
        font=ScaledGlyphAccumulatorFactory(font_path, font_size=size),
        font_size=size,
        leading=round(size * 1.25),
        border_width=0,
        box_layout_rule=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MIN,
            y_align=layout.AxisAlignment.ALIGN_MIN,
            margins=layout.Margins.uniform(0),
        ),
    )

    class SlotsStamp(BaseStamp):
        def _render_inner_content(self) -> list[bytes]:
            commands: list[bytes] = []
            for n, (x, text) in enumerate(slots):
                # one font resource per text box: a shared name would let the
                # second subset replace the first one's glyphs
                box = TextBox(
                    box_style,
                    writer=self.writer,
                    resources=self.resources,
                    box=None,
                    font_name=f"SK{n}",
                )
                box.content = text
                ops = box.render()
                # pyHanko puts a one-line box's baseline at its bottom
                commands.append(
                    b"q %g 0 0 %g %g %g cm " % (scale, scale, x, baseline) + ops + b" Q"
                )
            return commands

    @_dataclass(frozen=True)
    class SlotsStyle(BaseStampStyle):
        def create_stamp(self, writer: Any, box: Any, text_params: dict[str, Any]) -> Any:
            return SlotsStamp(writer=writer, style=self, box=box)

    return SlotsStyle(border_width=0)
