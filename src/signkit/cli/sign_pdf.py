"""`signkit sign pdf`: PAdES signatures, placed and drawn, in bulk."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from .complete import pdf_presets
from .framework import command, grouped
from .options import BatchOptions, ConfigOptions, InputOptions, PdfPasswordFile
from .sign import app
from .sign_run import SignRun, pdf_password, sign_command


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class PdfOptions:
    """The signature of `sign pdf`: its dictionary, its place and its look
    (the fields of formats.pdf.PdfDocOptions, by the same names)."""

    level: Annotated[
        Literal["B-B", "B-T", "B-LT", "B-LTA"],
        typer.Option("--level", help="PAdES baseline level."),
    ] = "B-B"
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Reason for signing.")
    ] = None
    location: Annotated[
        str | None,
        typer.Option("--location", metavar="TEXT", help="Where the document was signed."),
    ] = None
    contact: Annotated[
        str | None,
        typer.Option("--contact", metavar="TEXT", help="Signer contact information."),
    ] = None
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="TEXT", help="Signer name shown by readers (default: certificate CN)."
        ),
    ] = None
    field: Annotated[
        str | None,
        typer.Option("--field", metavar="NAME", help="Signature field to fill, or to create."),
    ] = None
    page: Annotated[
        str | None,
        typer.Option(
            "--page",
            metavar="N|last",
            help="Page of a visible signature: N or 'last' (default 1; --anchor-text searches "
            "from the last page back unless given).",
        ),
    ] = None
    rect: Annotated[
        str | None,
        typer.Option(
            "--rect", metavar="X,Y,W,H", help="Visible signature box in mm from --corner."
        ),
    ] = None
    corner: Annotated[
        Literal["bottom-left", "top-left", "top-right", "bottom-right"],
        typer.Option("--corner", help="Corner --rect is measured from."),
    ] = "bottom-left"
    text: Annotated[
        str | None,
        typer.Option(
            "--text",
            metavar="TEXT",
            help="Appearance text; placeholders {signer} {org} {serial} {time} "
            "{reason} {location}; '' for image only.",
        ),
    ] = None
    image: Annotated[
        Path | None,
        typer.Option(
            "--image",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="PNG (with alpha) shown in the appearance.",
        ),
    ] = None
    layout: Annotated[
        Literal["side", "stacked"],
        typer.Option("--layout", help="Image and text side by side, or stacked."),
    ] = "side"
    font_size: Annotated[
        float, typer.Option("--font-size", metavar="PT", help="Appearance text size.")
    ] = 9.0
    anchor_text: Annotated[
        str | None,
        typer.Option(
            "--anchor-text",
            metavar="TEXT",
            help="Place the signature by this text on the page (e.g. the signer's printed name).",
        ),
    ] = None
    anchor_occurrence: Annotated[
        int | None,
        typer.Option(
            "--anchor-occurrence",
            min=1,
            metavar="N",
            help="Which occurrence of the anchor text on its page (default: the last).",
        ),
    ] = None
    anchor_ignore_case: Annotated[
        bool,
        typer.Option(
            "--anchor-ignore-case",
            help="Match the anchor text whatever its case ('TRẦN THỊ BÌNH' finds 'Trần Thị Bình').",
        ),
    ] = False
    anchor_position: Annotated[
        Literal["above", "below", "left", "right", "over"],
        typer.Option("--anchor-position", help="Where the box goes relative to the text."),
    ] = "above"
    anchor_offset: Annotated[
        str,
        typer.Option(
            "--anchor-offset", metavar="DX,DY", help="Shift of the anchored box in mm (right, up)."
        ),
    ] = "0,0"
    box_size: Annotated[
        str, typer.Option("--box-size", metavar="W,H", help="Size in mm of an anchored box.")
    ] = "60,20"
    certify: Annotated[
        bool, typer.Option("--certify", help="Certification signature (DocMDP).")
    ] = False
    docmdp: Annotated[
        int,
        typer.Option(
            "--docmdp",
            min=1,
            max=3,
            metavar="1-3",
            help="With --certify: 1 no changes, 2 form filling, 3 + annotations.",
        ),
    ] = 2
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="Document layout filling the options left at their defaults: nd30-person, "
            "nd30-org, nd30-number-date, nd30-number, nd30-date, nd30-attachment, nd30-copy "
            "(Decree 30/2020), or a [pdf-presets.NAME] table of the configuration.",
            autocompletion=pdf_presets,
        ),
    ] = None
    seal_mm: Annotated[
        float | None,
        typer.Option("--seal-mm", metavar="MM", help="nd30-org: the seal's real diameter."),
    ] = None
    over_field: Annotated[
        str | None,
        typer.Option(
            "--over-field",
            metavar="NAME",
            help="nd30-org: the signature the seal overlaps (default: the last one with an image).",
        ),
    ] = None
    doc_number: Annotated[
        str | None,
        typer.Option(
            "--doc-number",
            metavar="TEXT",
            help="Number and symbol, e.g. 12/QĐ-UBND ({doc_number}).",
        ),
    ] = None
    copy_form: Annotated[
        str | None,
        typer.Option(
            "--copy-form",
            metavar="FORM",
            help="nd30-copy: SAO Y, SAO LỤC or TRÍCH SAO ({copy_form}).",
        ),
    ] = None
    copy_org: Annotated[
        str | None,
        typer.Option(
            "--copy-org", metavar="TEXT", help="nd30-copy: the copying organisation ({copy_org})."
        ),
    ] = None


@command(app, "pdf")
@grouped
def sign_pdf(
    ctx: typer.Context,
    *,
    inputs: InputOptions,
    batch: BatchOptions,
    pdf: PdfOptions,
    password_file: PdfPasswordFile = None,
    run: SignRun,
    config: ConfigOptions,
) -> None:
    """Sign PDFs (PAdES B-B, B-T, B-LT, B-LTA), one token session for the whole batch.

    \b
    Examples:
      signkit sign pdf inbox/*.pdf
      signkit sign pdf -r inbox --output-dir signed --level B-LT --tsa http://tsa.example
      signkit sign pdf --manifest batch.csv --report report.json
    """

    def make_format() -> Any:
        from signkit.formats.pdf import PdfDocOptions, PdfFormat

        values = {f.name: getattr(pdf, f.name) for f in dataclasses.fields(pdf)}
        values["image"] = str(pdf.image) if pdf.image else None
        return PdfFormat(defaults=PdfDocOptions(**values), password=pdf_password(password_file))

    sign_command(ctx, inputs, batch, run, "sign pdf", make_format)
