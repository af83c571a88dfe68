"""CAdES as a format of the signing pipeline (see formats/plugin.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from signkit.errors import UsageError
from signkit.formats.cms import inspect, sign
from signkit.formats.cms.options import (
    LONG_TERM,
    OVERRIDABLE,
    SIGNATURE_EXTENSIONS,
    TIMESTAMPED,
    CmsDocOptions,
    resolve_options,
)
from signkit.formats.plugin import (
    OutputState,
    PlannedDocLike,
    SignerContext,
    Stages,
    batch_signer,
)

_EVERY_FILE: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CmsFormat:
    """CAdES signatures of any file, detached (.p7s) or attached (.p7m)."""

    defaults: CmsDocOptions = field(default_factory=CmsDocOptions)
    """The job's signature options (manifest rows override them)."""

    name = "cms"
    extensions = _EVERY_FILE
    """Every file is a document (a directory is signed whole)..."""
    exclude_extensions = SIGNATURE_EXTENSIONS
    """...except the signatures themselves."""
    manifest_columns = OVERRIDABLE
    timestamped_levels = TIMESTAMPED
    long_term_levels = LONG_TERM
    warmup = ("signkit.formats.cms.sign", "worker_warmup")
    light_stages = False

    def resolve(self, overrides: Mapping[str, str]) -> CmsDocOptions:
        """The job's options with a manifest row's overrides, validated."""
        return resolve_options(self.defaults, overrides)

    def output_extension(self, options: object) -> str:
        """a.docx -> a.docx.p7s (detached) or a.docx.p7m (attached)."""
        assert isinstance(options, CmsDocOptions)  # noqa: S101 - resolved by this format
        return options.extension

    def check_plan(self, docs: Sequence[PlannedDocLike]) -> None:
        """A signature is a file of its own: it never replaces its input."""
        if any(d.in_place for d in docs):
            raise UsageError("--in-place does not apply to CMS signatures (a file of their own)")

    def preflight(self, docs: Sequence[PlannedDocLike], warn: Callable[[str], None]) -> None:
        """Nothing to check before the token opens."""

    def passes(self, docs: Sequence[PlannedDocLike]) -> list[list[PlannedDocLike]]:
        """One signature per document, in one pass."""
        return [list(docs)]

    def stages(self, context: SignerContext) -> Stages:
        """Digests in a worker; time-stamps, validation data and the file after the token."""
        config = sign.CmsBatchConfig(**batch_signer(context))

        def make_item(index: int, planned: PlannedDocLike, temp: Path) -> sign.PrepareItem:
            opts = planned.options
            assert isinstance(opts, CmsDocOptions)  # noqa: S101 - resolved by this format
            return sign.PrepareItem(
                index=index, input=str(planned.input), temp=str(temp), options=opts, config=config
            )

        return Stages(
            prepare=sign.worker_prepare,  # type: ignore[arg-type]
            finish=sign.worker_finish,  # type: ignore[arg-type]
            make_item=make_item,
        )

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """See inspect.output_state."""
        return inspect.output_state(doc.output, doc.input, signer_sha256)
