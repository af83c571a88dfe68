"""`signkit sign xml`: XMLDSig and XAdES signatures in bulk."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer

from .complete import xml_presets
from .framework import command, grouped
from .options import BatchOptions, ConfigOptions, InputOptions
from .sign import app
from .sign_run import SignRun, sign_command


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class XmlOptions:
    """The signature of `sign xml` (None: the preset's, else the default)."""

    level: Annotated[
        Literal["plain", "B-B", "B-T", "B-LT"] | None,
        typer.Option(
            "--level",
            help="plain XMLDSig, or XAdES B-B / B-T / B-LT [default: the preset's, else plain].",
        ),
    ] = None
    form: Annotated[
        Literal["enveloped", "enveloping", "detached"] | None,
        typer.Option(
            "--form",
            help="Signature inside the document (default), the document inside the signature, "
            "or the signature in a file of its own (over the whole data file, or with "
            "--reference over one element of it).",
        ),
    ] = None
    reference: Annotated[
        str | None,
        typer.Option(
            "--reference",
            metavar="ID",
            help="Sign the element with this Id (default: the whole document).",
        ),
    ] = None
    id_attributes: Annotated[
        list[str] | None,
        typer.Option(
            "--id-attribute",
            metavar="NAME",
            help="Another attribute that carries Ids (e.g. lower-case 'id'); repeatable.",
        ),
    ] = None
    signature_parent: Annotated[
        str | None,
        typer.Option(
            "--signature-parent",
            metavar="XPATH",
            help="Element the Signature is appended to (default: the root element).",
        ),
    ] = None
    signature_id: Annotated[
        str | None,
        typer.Option("--signature-id", metavar="ID", help="Id of the Signature element."),
    ] = None
    c14n: Annotated[
        Literal["inclusive", "exclusive"] | None,
        typer.Option("--c14n", help="Canonicalisation (default: inclusive C14N 1.0)."),
    ] = None
    signer_role: Annotated[
        str | None,
        typer.Option("--signer-role", metavar="TEXT", help="XAdES claimed signer role."),
    ] = None
    data_object_format: Annotated[
        str | None,
        typer.Option(
            "--data-object-format",
            metavar="MIME",
            help="XAdES DataObjectFormat of the signed data.",
        ),
    ] = None


@command(app, "xml")
@grouped
def sign_xml(
    ctx: typer.Context,
    *,
    inputs: InputOptions,
    batch: BatchOptions,
    xml: XmlOptions,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset",
            metavar="NAME",
            help="Document layout: vn-einvoice, vn-tax-declaration, vn-edxml, "
            "or a [xml-presets.NAME] table of the configuration.",
            autocompletion=xml_presets,
        ),
    ] = None,
    run: SignRun,
    config: ConfigOptions,
) -> None:
    """Sign XML documents (XMLDSig, XAdES B-B/B-T/B-LT), one token session for the whole batch.

    The document's bytes are kept as they are: the Signature is inserted,
    nothing is reformatted. A DTD may only declare ID attributes; entities
    are never expanded, nothing is fetched.

    \b
    Examples:
      signkit sign xml inbox/*.xml --output-dir signed
      signkit sign xml -r invoices --preset vn-einvoice --output-dir signed
      signkit sign xml data.xml --level B-T --tsa http://tsa.example --signer-role "Kế toán"
    """

    def make_format() -> Any:
        from signkit.config import load_config
        from signkit.formats.xml_format import XmlFormat, build_options

        given = {f.name: getattr(xml, f.name) for f in dataclasses.fields(xml)}
        given["id_attributes"] = ("Id", *xml.id_attributes) if xml.id_attributes else None
        return XmlFormat(
            defaults=build_options(
                preset=preset, config=load_config(config.config_path), given=given
            )
        )

    sign_command(ctx, inputs, batch, run, "sign xml", make_format)
