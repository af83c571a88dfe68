"""XML as a format of the signing pipeline (see formats/plugin.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from signkit.errors import UsageError
from signkit.formats.plugin import (
    OutputState,
    PlannedDocLike,
    SignerContext,
    Stages,
    batch_signer,
)
from signkit.formats.xml.options import (
    EXTENSIONS,
    OVERRIDABLE,
    TIMESTAMPED,
    XmlDocOptions,
    resolve_options,
    validate,
)


@dataclass(frozen=True, kw_only=True)
class XmlFormat:
    """XMLDSig and XAdES signatures on XML documents."""

    defaults: XmlDocOptions = field(default_factory=XmlDocOptions)
    """The job's signature options (preset and command line; manifest rows override)."""

    name = "xml"
    extensions = EXTENSIONS
    manifest_columns = OVERRIDABLE
    timestamped_levels = frozenset(TIMESTAMPED)
    long_term_levels = frozenset(("B-LT",))
    warmup = ("signkit.formats.xml.sign", "worker_warmup")
    light_stages = True

    def resolve(self, overrides: Mapping[str, str]) -> XmlDocOptions:
        """The job's options with a manifest row's overrides, validated."""
        return resolve_options(validate(self.defaults), overrides)

    def check_plan(self, docs: Sequence[PlannedDocLike]) -> None:
        """A detached signature is a file of its own: it cannot replace its input."""
        if any(d.in_place and _options(d).form == "detached" for d in docs):
            raise UsageError(
                "--in-place cannot hold a detached signature (it is a file of its own)"
            )

    def check_document(self, doc: PlannedDocLike) -> None:
        """--dry-run: XML placement needs the parsed document; nothing more is told here."""

    def preflight(self, docs: Sequence[PlannedDocLike], warn: Callable[[str], None]) -> None:
        """Nothing to check before the token opens."""

    def passes(self, docs: Sequence[PlannedDocLike]) -> list[list[PlannedDocLike]]:
        """One signature per document, in one pass."""
        return [list(docs)]

    def stages(self, context: SignerContext) -> Stages:
        """Signature laid out in a worker; value, time-stamp and check after the token."""
        # The light module: the main process needs the XML stack only to
        # judge an output already there (output_state).
        from signkit.formats.xml import batch

        config = batch.XmlBatchConfig(
            **batch_signer(context, _intermediates(context.chain_der)),
            key_type=context.key_type,
            key_size=context.key_size,
            tax_code=batch.tax_code_of(context.certificate_der),
        )

        def make_item(index: int, planned: PlannedDocLike, temp: Path) -> batch.PrepareItem:
            return batch.PrepareItem(
                index=index,
                input=str(planned.input),
                output=str(planned.output),
                temp=str(temp),
                options=_options(planned),
                config=config,
            )

        return Stages(
            prepare=batch.worker_prepare,  # type: ignore[arg-type]
            finish=batch.worker_finish,  # type: ignore[arg-type]
            make_item=make_item,
        )

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """See sign.output_state."""
        from signkit.formats.xml.sign import output_state

        opts = _options(doc)
        return output_state(
            doc.output,
            doc.input,
            signer_sha256,
            form=opts.form,
            in_place=doc.in_place,
            id_attributes=opts.id_attributes,
        )


def _options(doc: PlannedDocLike) -> XmlDocOptions:
    opts = doc.options
    assert isinstance(opts, XmlDocOptions)  # noqa: S101 - resolved by this format
    return opts


def _intermediates(chain: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """The chain without the leaf and without self-signed roots (KeyInfo carries these)."""
    from cryptography import x509

    out = []
    for der in chain[1:]:
        cert = x509.load_der_x509_certificate(der)
        if cert.subject != cert.issuer:
            out.append(der)
    return tuple(out)
