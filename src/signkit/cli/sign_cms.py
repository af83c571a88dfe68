"""`signkit sign cms`: CAdES signatures of files of any type, in bulk."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer

from .framework import command, grouped
from .options import BatchOptions, InputOptions
from .sign import app
from .sign_run import SignRun, sign_command


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class CmsOptions:
    """The signature of `sign cms` (the fields of formats.cms.CmsDocOptions)."""

    level: Annotated[
        Literal["B-B", "B-T", "B-LT", "B-LTA"],
        typer.Option("--level", help="CAdES baseline level."),
    ] = "B-B"
    attached: Annotated[
        bool,
        typer.Option(
            "--attached", help="Embed the content in the signature (a.docx -> a.docx.p7m)."
        ),
    ] = False
    pem: Annotated[bool, typer.Option("--pem", help="Write PEM instead of DER.")] = False


@command(app, "cms")
@grouped
def sign_cms(
    ctx: typer.Context,
    *,
    inputs: InputOptions,
    batch: BatchOptions,
    cms: CmsOptions,
    run: SignRun,
) -> None:
    """Sign files of any type (CAdES B-B, B-T, B-LT, B-LTA), one token session for the batch.

    Each signature is a file of its own next to its document: a.docx ->
    a.docx.p7s (detached, the default) or a.docx.p7m (--attached, the content
    inside). Large files are streamed, never read into memory. --suffix and
    --in-place do not apply.

    \b
    Examples:
      signkit sign cms bang-luong.xlsx hop-dong.docx
      signkit sign cms -r outbox --level B-LT --tsa http://tsa.example --output-dir signed
      signkit sign cms scan.zip --attached --pem
    """

    def make_format() -> Any:
        from signkit.formats.cms.options import CmsDocOptions
        from signkit.formats.cms.plugin import CmsFormat

        return CmsFormat(
            defaults=CmsDocOptions(level=cms.level, attached=cms.attached, pem=cms.pem)
        )

    sign_command(ctx, inputs, dataclasses.replace(batch, suffix=""), run, "sign cms", make_format)
