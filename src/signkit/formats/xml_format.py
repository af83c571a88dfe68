"""XML as a format of the signing pipeline (see formats/plugin.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signkit.config import Config
from signkit.errors import ConfigError, UsageError
from signkit.formats import xml
from signkit.formats.plugin import OutputState, PlannedDocLike, SignerContext, Stages
from signkit.formats.xml_presets import BUILTIN, PRESET_KEYS


@dataclass(frozen=True, kw_only=True)
class XmlFormat:
    """XMLDSig and XAdES signatures on XML documents."""

    defaults: xml.XmlDocOptions = field(default_factory=xml.XmlDocOptions)
    """The job's signature options (preset and command line; manifest rows override)."""

    name = "xml"
    extensions = xml.EXTENSIONS
    manifest_columns = xml.OVERRIDABLE
    timestamped_levels = frozenset(xml.TIMESTAMPED)
    long_term_levels = frozenset(("B-LT",))
    warmup = ("signkit.formats.xml", "worker_warmup")

    def resolve(self, overrides: Mapping[str, str]) -> xml.XmlDocOptions:
        """The job's options with a manifest row's overrides, validated."""
        return xml.resolve_options(xml.validate(self.defaults), overrides)

    def check_plan(self, docs: Sequence[PlannedDocLike]) -> None:
        """A detached signature is a file of its own: it cannot replace its input."""
        if any(d.in_place and _options(d).form == "detached" for d in docs):
            raise UsageError(
                "--in-place cannot hold a detached signature (it is a file of its own)"
            )

    def preflight(self, docs: Sequence[PlannedDocLike], warn: Callable[[str], None]) -> None:
        """Nothing to check before the token opens."""

    def passes(self, docs: Sequence[PlannedDocLike]) -> list[list[PlannedDocLike]]:
        """One signature per document, in one pass."""
        return [list(docs)]

    def stages(self, context: SignerContext) -> Stages:
        """Signature laid out in a worker; value, time-stamp and check after the token."""
        config = xml.XmlBatchConfig(
            signer_der=context.certificate_der,
            chain_der=_intermediates(context.chain_der),
            key_type=context.key_type,
            key_size=context.key_size,
            digest_algorithm=context.digest_algorithm,
            scheme=context.scheme,
            tsa=context.tsa,
            timezone=context.timezone,
            tax_code=xml.tax_code_of(context.certificate_der),
            ltv_certs=context.ltv_certs,
            ltv_ocsps=context.ltv_ocsps,
            ltv_crls=context.ltv_crls,
        )

        def make_item(index: int, planned: PlannedDocLike, temp: Path) -> xml.PrepareItem:
            return xml.PrepareItem(
                index=index,
                input=str(planned.input),
                output=str(planned.output),
                temp=str(temp),
                options=_options(planned),
                config=config,
            )

        return Stages(
            prepare=xml.worker_prepare,  # type: ignore[arg-type]
            finish=xml.worker_finish,  # type: ignore[arg-type]
            make_item=make_item,
        )

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """See xml.output_state."""
        opts = _options(doc)
        return xml.output_state(
            doc.output,
            doc.input,
            signer_sha256,
            form=opts.form,
            in_place=doc.in_place,
            id_attributes=opts.id_attributes,
        )


def _options(doc: PlannedDocLike) -> xml.XmlDocOptions:
    opts = doc.options
    assert isinstance(opts, xml.XmlDocOptions)  # noqa: S101 - resolved by this format
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


def preset_settings(name: str, config: Config) -> Mapping[str, Any]:
    """The settings of a built-in preset or of a ``[xml-presets.NAME]`` config table."""
    user = config.section("xml-presets")
    if name in user:
        if name in BUILTIN:
            raise ConfigError(
                f"[xml-presets.{name}] would redefine a built-in preset; choose another name",
                subject=str(config.path),
            )
        table = user[name]
        unknown = sorted(set(k.replace("-", "_") for k in table) - set(PRESET_KEYS))
        if unknown:
            raise ConfigError(
                f"[xml-presets.{name}]: unknown key(s) {', '.join(unknown)}",
                subject=str(config.path),
                hint="keys: " + ", ".join(sorted(PRESET_KEYS)),
            )
        return table
    if name in BUILTIN:
        return BUILTIN[name]
    known = sorted(set(BUILTIN) | set(user))
    raise UsageError(f"unknown preset '{name}'", hint="presets: " + ", ".join(known))


def build_options(
    *, preset: str | None, config: Config, given: Mapping[str, Any]
) -> xml.XmlDocOptions:
    """Preset first, then the options given on the command line (None = not given)."""
    opts = xml.XmlDocOptions()
    if preset is not None:
        settings = preset_settings(preset, config)
        try:
            opts = xml.apply_settings(opts, settings, f"preset {preset}")
        except UsageError as exc:
            raise ConfigError(exc.message, subject=exc.subject, hint=exc.hint) from None
    chosen = {k: v for k, v in given.items() if v is not None and v != ()}
    if "signature_parent" in chosen:
        # An explicit XPath replaces the preset's path (and is never created).
        chosen["parent_path"] = ()
        chosen["create_parent"] = False
    if "reference" in chosen:
        chosen["reference_path"] = ()
    if "id_attributes" in chosen:
        # Registered on top of the preset's (a preset's lower-case 'id' stays).
        chosen["id_attributes"] = tuple(
            dict.fromkeys((*opts.id_attributes, *chosen["id_attributes"]))
        )
    return xml.apply_settings(opts, chosen, "options")
