"""PDF signature options: the settings of one signature, from the command
line, a manifest row or a preset, resolved and validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from signkit.errors import (
    ConfigError,
    UsageError,
)
from signkit.formats.pdf.anchor import (
    POSITIONS,
    parse_pair,
)
from signkit.formats.pdf.appearance import (
    CORNERS,
    parse_rect,
)
from signkit.formats.pdf.presets import COPY_FORMS, get_preset

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


EXTENSIONS = (".pdf",)


@dataclass(frozen=True, kw_only=True)
class PdfDocOptions:
    """Per-document signature settings (every field is also a manifest column)."""

    level: str = "B-B"
    """PAdES baseline level."""
    reason: str | None = None
    """/Reason."""
    location: str | None = None
    """/Location."""
    contact: str | None = None
    """/ContactInfo."""
    name: str | None = None
    """/Name (signer name shown by readers)."""
    field: str | None = None
    """Signature field to fill or create."""
    page: str | None = None
    """Page for a new visible field: a number or 'last' (default 1; anchors search from the end)."""
    rect: str | None = None
    """X,Y,W,H in mm from ``corner`` (makes the signature visible)."""
    corner: str = "bottom-left"
    """Corner ``rect`` is measured from."""
    text: str | None = None
    """Appearance text template."""
    image: str | None = None
    """PNG shown in the appearance."""
    layout: str = "side"
    """Image and text 'side' by side or 'stacked'."""
    font_size: float = 9.0
    """Appearance text size in points."""
    anchor_text: str | None = None
    """Place the box by this text on the page (makes the signature visible)."""
    anchor_occurrence: int | None = None
    """Which occurrence on the page (1-based); default the last."""
    anchor_ignore_case: bool = False
    """Match the anchor text whatever its case."""
    anchor_position: str = "above"
    """Box above, below, left or right of the text, or over it."""
    anchor_offset: str = "0,0"
    """DX,DY in mm added to the anchored position (right, up)."""
    box_size: str = "60,20"
    """W,H in mm of an anchored box."""
    certify: bool = False
    """Certification (DocMDP) signature."""
    docmdp: int = 2
    """DocMDP level with --certify: 1 no changes, 2 form filling, 3 + annotations."""
    preset: str | None = None
    """Document layout (see formats/pdf/presets.py): fills the options left unset."""
    seal_mm: float | None = None
    """Real diameter of the seal in mm (nd30-org)."""
    over_field: str | None = None
    """Field of the signature the seal overlaps (default: the last one with an image)."""
    doc_number: str | None = None
    """Document number and symbol, e.g. 12/QĐ-UBND ({doc_number} in the text)."""
    copy_form: str | None = None
    """Form of copy: SAO Y, SAO LỤC or TRÍCH SAO ({copy_form})."""
    copy_org: str | None = None
    """Copying organisation ({copy_org}; default the certificate's organisation)."""
    then: tuple[PdfDocOptions, ...] = ()
    """A preset of several signatures (nd30-number-date): the later ones, whose
    placement is checked before the first is made (not a manifest column)."""

    @property
    def visible(self) -> bool:
        """Whether this signature has an appearance on a page."""
        return (
            self.rect is not None
            or self.anchor_text is not None
            or self.placement in ("over-signature", "number-slot", "date-slots")
        )

    @property
    def placement(self) -> str:
        """How the preset places the signature ('free' without a preset)."""
        return get_preset(self.preset).placement if self.preset is not None else "free"

    @property
    def over_signature(self) -> bool:
        """Placed over an earlier signature (the organisation's seal)."""
        return self.placement == "over-signature"


# Manifest columns: the long option names (anchor-text) or the field names (anchor_text).
_COLUMNS = [f.name for f in fields(PdfDocOptions) if f.name != "then"]
OVERRIDABLE = frozenset(_COLUMNS) | frozenset(name.replace("_", "-") for name in _COLUMNS)


def _as_bool(value: str, column: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "y"):
        return True
    if low in ("0", "false", "no", "n", ""):
        return False
    raise UsageError(f"'{column}' must be true or false", subject=value)


def resolve_options(defaults: PdfDocOptions, overrides: Mapping[str, str]) -> PdfDocOptions:
    """Apply manifest overrides, then validate the result."""
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        name = key.replace("-", "_")
        if name in ("certify", "anchor_ignore_case"):
            changes[name] = _as_bool(raw, key)
        elif name in ("docmdp", "anchor_occurrence"):
            try:
                changes[name] = int(raw)
            except ValueError:
                raise UsageError(f"'{key}' must be a whole number", subject=raw) from None
        elif name in ("font_size", "seal_mm"):
            try:
                changes[name] = float(raw)
            except ValueError:
                raise UsageError(f"'{key}' must be a number", subject=raw) from None
        else:
            changes[name] = raw
    opts = _apply_preset(replace(defaults, **changes))
    if opts.level not in LEVELS:
        raise UsageError(f"level must be one of {', '.join(LEVELS)}", subject=opts.level)
    if opts.corner not in CORNERS:
        raise UsageError(f"corner must be one of {', '.join(CORNERS)}", subject=opts.corner)
    if opts.docmdp not in (1, 2, 3):
        raise UsageError("docmdp must be 1, 2 or 3", subject=str(opts.docmdp))
    if opts.layout not in ("side", "stacked"):
        raise UsageError("layout must be 'side' or 'stacked'", subject=opts.layout)
    if opts.rect is not None:
        parse_rect(opts.rect)
    if opts.rect is not None and opts.anchor_text is not None:
        raise UsageError("choose one of --rect and --anchor-text")
    if opts.anchor_position not in POSITIONS:
        raise UsageError(
            f"anchor position must be one of {', '.join(POSITIONS)}", subject=opts.anchor_position
        )
    parse_pair(opts.anchor_offset, "--anchor-offset")
    parse_pair(opts.box_size, "--box-size")
    if opts.page is not None and opts.page != "last":
        try:
            if int(opts.page) < 1:
                raise ValueError
        except ValueError:
            raise UsageError("page must be a number from 1, or 'last'", subject=opts.page) from None
    if opts.image is not None and not Path(opts.image).is_file():
        raise UsageError("appearance image not found", subject=opts.image)
    return opts


_DEFAULTS = PdfDocOptions()


def _apply_preset(opts: PdfDocOptions) -> PdfDocOptions:
    """Fill what the user left unset from the preset, then check its rules."""
    if opts.preset is None:
        return opts
    preset = get_preset(opts.preset)
    changes: dict[str, Any] = {}
    for key, raw in preset.options.items():
        name = key.replace("-", "_")
        if not hasattr(_DEFAULTS, name) or name == "preset":
            raise ConfigError(f"preset {preset.name}: unknown option '{key}'", subject=preset.name)
        if getattr(opts, name) == getattr(_DEFAULTS, name):
            changes[name] = float(raw) if name in ("font_size", "seal_mm") else raw
    if preset.placement == "corner" and (opts.anchor_text is not None):
        changes["rect"] = None  # the user placed it by text instead
    opts = replace(opts, **changes)
    for name in preset.requires:
        if getattr(opts, name) in (None, ""):
            raise UsageError(
                f"preset {preset.name} needs --{name.replace('_', '-')}", subject=preset.name
            )
    for name in preset.forbids:
        if getattr(opts, name) not in (None, False, ""):
            raise UsageError(
                f"preset {preset.name} does not allow --{name.replace('_', '-')}",
                subject=preset.name,
            )
    if preset.placement == "free" and not (opts.rect or opts.anchor_text):
        raise UsageError(
            f"preset {preset.name} needs --anchor-text (e.g. the signer's printed name) or --rect",
            subject=preset.name,
        )
    if opts.seal_mm is not None and not 5 <= opts.seal_mm <= 100:
        raise UsageError(
            "--seal-mm is the seal's diameter in mm (5 to 100)", subject=str(opts.seal_mm)
        )
    if opts.copy_form is not None:
        form = opts.copy_form.strip().upper()
        if form not in COPY_FORMS:
            raise UsageError(
                f"form of copy must be one of {', '.join(COPY_FORMS)}", subject=opts.copy_form
            )
        opts = replace(opts, copy_form=form)
    return opts
