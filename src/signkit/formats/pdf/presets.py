"""PDF signature presets: document layouts as data (Decree 30/2020 appearances).

A preset fills the options a user did not set: where the signature goes, what
it shows, and what it requires. Each entry is plain data so that a user can
copy one into their config and adjust it; the placement kinds are the only
code: ``free`` (the user's --rect or --anchor-text), ``corner`` (a fixed box
from a page corner), ``over-signature`` (the seal over the leader's
signature image), ``number-slot`` and ``date-slots`` (text in the blanks
after printed labels); a ``composite`` preset runs others in turn.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from signkit.errors import ConfigError, UsageError

COPY_FORMS = ("SAO Y", "SAO LỤC", "TRÍCH SAO")
PLACEMENTS = ("free", "corner", "over-signature", "number-slot", "date-slots", "composite")


@dataclass(frozen=True, kw_only=True)
class PdfPreset:
    """One document layout."""

    name: str
    """What users pass to --preset."""
    summary: str
    """One line for --help and errors."""
    options: Mapping[str, str] = field(default_factory=dict)
    """Defaults for the signature options (manifest spelling), applied where unset."""
    placement: str = "free"
    """'free', 'corner' or 'over-signature'."""
    requires: tuple[str, ...] = ()
    """Options that must be given (field names of PdfDocOptions)."""
    forbids: tuple[str, ...] = ()
    """Options that must not be set (e.g. certify for the leader)."""
    needs_earlier_signature: bool = False
    """Refuse unless the document already carries a signature that still validates."""
    scan_checks: bool = False
    """Warn when the scan is below PDF 1.4, not colour, or under 200 dpi."""
    slot_labels: tuple[str, ...] = ()
    """number-slot/date-slots: the printed labels whose blanks are filled in."""
    passes: tuple[str, ...] = ()
    """A composite preset: these presets, one signature each, in this order."""


PRESETS: dict[str, PdfPreset] = {
    p.name: p
    for p in (
        PdfPreset(
            name="nd30-person",
            summary="leader's signature: handwritten-signature PNG between title and name, no text",
            options={"text": "", "field": "ND30-Person", "box-size": "40,20"},
            placement="free",
            requires=("image",),
            forbids=("certify",),
        ),
        PdfPreset(
            name="nd30-org",
            summary="organisation's seal over a third of the leader's signature, on its left",
            options={"text": "", "field": "ND30-Org"},
            placement="over-signature",
            requires=("image", "seal_mm"),
            forbids=("certify", "rect", "anchor_text"),
            needs_earlier_signature=True,
        ),
        PdfPreset(
            name="nd30-number",
            summary="the document number in the blank after 'Số:' on page 1, as signed text",
            options={"page": "1", "field": "ND30-Number"},
            placement="number-slot",
            requires=("doc_number",),
            forbids=("image", "rect", "anchor_text", "certify"),
            slot_labels=("Số:",),
        ),
        PdfPreset(
            name="nd30-date",
            summary="the issue date in the blanks of 'ngày … tháng … năm' on page 1 (signed text)",
            options={"page": "1", "field": "ND30-Date"},
            placement="date-slots",
            forbids=("image", "rect", "anchor_text", "certify"),
            slot_labels=("ngày", "tháng", "năm"),
        ),
        PdfPreset(
            name="nd30-number-date",
            summary="nd30-number then nd30-date: two signatures, each in its own new field",
            placement="composite",
            requires=("doc_number",),
            forbids=("image", "rect", "anchor_text", "certify"),
            passes=("nd30-number", "nd30-date"),
        ),
        PdfPreset(
            name="nd30-attachment",
            summary="separate-file attachment: page 1 top right, number and symbol, signing time",
            options={
                "text": "{doc_number}\n{time}",
                "page": "1",
                "rect": "10,10,62,12",
                "corner": "top-right",
                "font-size": "10",
                "field": "ND30-Attachment",
            },
            placement="corner",
            requires=("doc_number",),
            forbids=("image",),
        ),
        PdfPreset(
            name="nd30-copy",
            summary="electronic copy: page 1 top right, form of copy, copying organisation, time",
            options={
                "text": "{copy_form}\n{copy_org}\n{time}",
                "page": "1",
                "rect": "10,10,80,17",
                "corner": "top-right",
                "font-size": "10",
                "field": "ND30-Copy",
            },
            placement="corner",
            requires=("copy_form",),
            forbids=("image",),
            scan_checks=True,
        ),
    )
}


def get_preset(name: str) -> PdfPreset:
    """The preset called ``name`` (built in, or ``[pdf-presets.NAME]`` in the
    user's config), or a usage error listing the known ones."""
    if name in PRESETS:
        return PRESETS[name]
    user = user_presets()
    if name in user:
        return user[name]
    known = sorted(set(PRESETS) | set(user))
    raise UsageError(f"unknown PDF preset (known: {', '.join(known)})", subject=name)


_TUPLE_KEYS = ("requires", "forbids", "slot_labels", "passes")


@functools.cache
def user_presets() -> dict[str, PdfPreset]:
    """``[pdf-presets.NAME]`` tables of the config file ($SIGNKIT_CONFIG or the
    default), read once per process: a built-in entry copied and adjusted.

        [pdf-presets.so-van-ban]
        summary = "number stamp of our office"
        placement = "corner"
        requires = ["doc_number"]
        forbids = ["image"]
        options = { text = "Số: {doc_number}", page = "1", rect = "15,12,60,10",
                    corner = "top-left", field = "So-Van-Ban" }
    """
    from signkit.config import load_config

    env = os.environ.get("SIGNKIT_CONFIG")
    config = load_config(Path(env) if env else None)
    where = str(config.path)
    allowed = {f.name for f in fields(PdfPreset)} - {"name"}
    out: dict[str, PdfPreset] = {}
    for name, table in config.section("pdf-presets").items():
        if name in PRESETS:
            raise ConfigError(
                f"[pdf-presets.{name}] would redefine a built-in preset; choose another name",
                subject=where,
            )
        values = {k.replace("-", "_"): v for k, v in table.items()}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(
                f"[pdf-presets.{name}]: unknown key(s) {', '.join(unknown)}",
                subject=where,
                hint="keys: " + ", ".join(sorted(allowed)),
            )
        try:
            for key in _TUPLE_KEYS:
                if key in values:
                    values[key] = tuple(str(v) for v in values[key])
            values["options"] = {str(k): str(v) for k, v in dict(values.get("options", {})).items()}
            values.setdefault("summary", f"user preset {name}")
            preset = PdfPreset(name=name, **values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[pdf-presets.{name}]: {exc}", subject=where) from None
        if preset.placement not in PLACEMENTS:
            raise ConfigError(
                f"[pdf-presets.{name}]: placement must be one of {', '.join(PLACEMENTS)}",
                subject=where,
            )
        out[name] = preset
    return out
