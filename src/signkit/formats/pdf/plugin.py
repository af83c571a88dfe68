"""PDF as a format of the signing pipeline (see formats/plugin.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from signkit.errors import ConfigError
from signkit.formats.cms.container import CmsTemplate, signature_size
from signkit.formats.pdf import decree30, finish, plain, prepare, resume
from signkit.formats.pdf.options import EXTENSIONS, OVERRIDABLE, PdfDocOptions, resolve_options
from signkit.formats.pdf.presets import get_preset
from signkit.formats.plugin import (
    OutputState,
    PlannedDocLike,
    SignerContext,
    Stages,
    batch_signer,
)


@dataclass(frozen=True, kw_only=True)
class PdfFormat:
    """PAdES signatures on PDFs."""

    defaults: PdfDocOptions = field(default_factory=PdfDocOptions)
    """The job's signature options (manifest rows override them)."""
    password: str | None = field(default=None, repr=False)
    """Password of encrypted input PDFs."""

    name = "pdf"
    extensions = EXTENSIONS
    manifest_columns = OVERRIDABLE
    timestamped_levels = frozenset(("B-T", "B-LT", "B-LTA"))
    long_term_levels = frozenset(("B-LT", "B-LTA"))
    light_stages = False

    @property
    def warmup(self) -> tuple[str, str]:
        """pyHanko is imported ahead only when the job's options need it (a
        visible or certifying signature, a password); a document of a plain
        batch that needs it after all imports it itself."""
        if plain.options_eligible(self.defaults, self.password):
            return ("signkit.formats.pdf.prepare", "worker_warmup_plain")
        return ("signkit.formats.pdf.prepare", "worker_warmup")

    def resolve(self, overrides: Mapping[str, str]) -> PdfDocOptions:
        """The job's options with a manifest row's overrides, validated."""
        return resolve_options(self.defaults, overrides)

    def check_plan(self, docs: Sequence[PlannedDocLike]) -> None:
        """Every PDF plan the options allow can be carried out."""

    def check_document(self, doc: PlannedDocLike) -> None:
        """What --dry-run checks without the token: the document opens, and each
        visible signature of its preset finds its place (anchor text, printed
        blanks, an earlier signature to seal over); a SignkitError says why not."""
        from signkit.jobs.outputs import PlannedDoc

        assert isinstance(doc, PlannedDoc)  # noqa: S101 - the pipeline plans these
        opts = _options(doc)
        steps = get_preset(opts.preset).passes if opts.preset is not None else ()
        if steps:
            each = [self.resolve({**doc.task.options, "preset": name}) for name in steps]
            opts = replace(each[0], then=tuple(each[1:]))
        prepare.check_placement(
            str(doc.input),
            opts,
            password=self.password,
            font_path=_font_path(),
            italic_font_path=_font_path(italic=True),
        )

    def preflight(self, docs: Sequence[PlannedDocLike], warn: Callable[[str], None]) -> None:
        """The font of visible signatures, and what a scanned copy lacks (Decree 30)."""
        every = [d for pass_docs in self.passes(docs) for d in pass_docs]
        if any(_options(d).visible for d in every):
            family, _path = _serif_font()
            if family != "Times New Roman":
                warn(f"Times New Roman not found; visible signatures use {family} instead")
        for d in docs:
            preset = _options(d).preset
            if preset is not None and get_preset(preset).scan_checks:
                for problem in decree30.scan_warnings(d.input):
                    warn(f"{d.input}: {problem} (Decree 30/2020 asks of a scanned copy)")

    def passes(self, docs: Sequence[PlannedDocLike]) -> list[list[PlannedDocLike]]:
        """A composite preset (nd30-number-date) puts one signature per pass on the
        same document, the later ones in place on the output."""
        from signkit.jobs.outputs import PlannedDoc

        first: list[PlannedDocLike] = []
        later: dict[int, list[PlannedDocLike]] = {}
        for d in docs:
            assert isinstance(d, PlannedDoc)  # noqa: S101 - the pipeline plans these
            opts = _options(d)
            steps = get_preset(opts.preset).passes if opts.preset is not None else ()
            if not steps:
                first.append(d)
                continue
            each = [self.resolve({**d.task.options, "preset": name}) for name in steps]
            for k, name in enumerate(steps):
                overrides = {**d.task.options, "preset": name}
                task = replace(d.task, options=overrides)
                resolved = each[k]
                if k == 0:
                    # all or nothing: the first signature is made only when the
                    # later ones can be placed too
                    resolved = replace(resolved, then=tuple(each[1:]))
                    first.append(replace(d, task=task, options=resolved))
                else:
                    task = replace(task, input=d.output, root=None, output=d.output)
                    later.setdefault(k, []).append(
                        PlannedDoc(task=task, output=d.output, in_place=True, options=resolved)
                    )
        return [first, *(later[k] for k in sorted(later))]

    def stages(self, context: SignerContext) -> Stages:
        """Placeholder and digest in a worker, CMS and LTV data after the token signed."""
        template = CmsTemplate.create(
            signer_der=context.certificate_der,
            chain_der=context.chain_der[1:],
            digest_algorithm=context.digest_algorithm,
            scheme=context.scheme,
        )
        allowance = prepare.TIMESTAMP_ALLOWANCE if context.needs_tsa else 0
        reserved = 2 * template.size_bound(
            signature_size(context.key_type, context.key_size), allowance
        )
        config = prepare.PdfBatchConfig(
            **batch_signer(context),
            bytes_reserved=reserved,
            password=self.password,
            font_path=_font_path(),
            italic_font_path=_font_path(italic=True),
            signer_name=context.signer_name,
            signer_org=context.signer_org,
            signer_serial=context.signer_serial,
        )

        def make_item(index: int, planned: PlannedDocLike, temp: Path) -> prepare.PrepareItem:
            return prepare.PrepareItem(
                index=index,
                input=str(planned.input),
                temp=str(temp),
                options=_options(planned),
                config=config,
            )

        return Stages(
            prepare=prepare.worker_prepare,  # type: ignore[arg-type]
            finish=finish.worker_finish,  # type: ignore[arg-type]
            make_item=make_item,
        )

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """Ours and current when the signature in the document's field (default:
        the last) is intact, by this certificate, and the output begins with
        the input's bytes (signatures are incremental updates of the input)."""
        if not resume.signed_by(doc.output, signer_sha256, _options(doc).field):
            return OutputState.FOREIGN
        if doc.in_place or _starts_with(doc.output, doc.input):
            return OutputState.DONE
        return OutputState.STALE


def _options(doc: PlannedDocLike) -> PdfDocOptions:
    opts = doc.options
    assert isinstance(opts, PdfDocOptions)  # noqa: S101 - resolved by this format
    return opts


def _serif_font() -> tuple[str, str]:
    from signkit.fontfiles import find_serif_font

    try:
        return find_serif_font()
    except FileNotFoundError:
        raise ConfigError(
            "no serif TrueType font for visible signatures",
            subject="fonts",
            hint="install fonts-liberation2 (or Times New Roman)",
        ) from None


def _font_path(*, italic: bool = False) -> str:
    """The appearance font (or its italic); '' when the host has none (only
    visible signatures need one, and preflight refused those already; without
    the italic, an italic line gets upright text)."""
    if italic:
        from signkit.fontfiles import find_serif_font

        try:
            return find_serif_font(italic=True)[1]
        except FileNotFoundError:
            return ""
    try:
        return _serif_font()[1]
    except ConfigError:
        return ""


def _starts_with(output: Path, source: Path) -> bool:
    """``output`` begins with every byte of ``source``."""
    try:
        with source.open("rb") as src, output.open("rb") as out:
            h_src, h_out = hashlib.sha256(), hashlib.sha256()
            remaining = 0
            while chunk := src.read(1 << 20):
                h_src.update(chunk)
                remaining += len(chunk)
            while remaining:
                chunk = out.read(min(1 << 20, remaining))
                if not chunk:
                    return False
                h_out.update(chunk)
                remaining -= len(chunk)
            return h_src.digest() == h_out.digest()
    except OSError:
        return False
