"""XML signature layouts (presets): where a signature goes and what it signs.

A preset is data: a table of option values that ``sign xml`` would otherwise
take from the command line. Paths are tuples of element local names from the
root (namespace-agnostic, so a layout fits documents with or without a
default namespace). Users add their own in the config file's
``[xml-presets.NAME]`` tables with the same keys; ``build_options`` lays
the command line over the chosen preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from signkit.config import Config
from signkit.errors import ConfigError, UsageError
from signkit.formats.xml.options import XmlDocOptions, apply_settings

BUILTIN: Mapping[str, Mapping[str, object]] = MappingProxyType(
    {
        # Decree 123/2020, Circular 78/2021: the seller signs DLHDon; the
        # signature and a SigningTime object sit in HDon/DSCKS/NBan.
        "vn-einvoice": MappingProxyType(
            {
                "parent_path": ("HDon", "DSCKS", "NBan"),
                "create_parent": True,
                "reference_path": ("HDon", "DLHDon"),
                "id_attributes": ("Id",),
                "transforms": ("enveloped", "c14n"),
                "c14n": "inclusive",
                "signing_time_object": True,
                "key_info": ("subject-name", "certificate"),
                "ds_prefix": "",
                "tax_code_path": ("HDon", "DLHDon", "NDHDon", "NBan", "MST"),
            }
        ),
        # HTKK tax declarations: HSoKhaiThue id="ID_1" (lower-case id), the
        # signature in CKyDTu.
        "vn-tax-declaration": MappingProxyType(
            {
                "parent_path": ("HSoThueDTu", "CKyDTu"),
                "create_parent": True,
                "reference_path": ("HSoThueDTu", "HSoKhaiThue"),
                "id_attributes": ("id",),
                "transforms": ("enveloped", "c14n"),
                "c14n": "inclusive",
                "key_info": ("subject-name", "certificate"),
                "ds_prefix": "",
            }
        ),
        # QCVN 102:2016/BTTTT edXML packages of the document interconnection
        # axis: the sender's signature is the last child of edXMLHeader (after
        # TraceHeaderList) in the XMLDSig default namespace, over the whole
        # document (the AttachmentEncoded outside the envelope included), as in
        # the SDK sample edoc_new.edxml (README: edXML packages).
        "vn-edxml": MappingProxyType(
            {
                "parent_path": ("edXML", "edXMLEnvelope", "edXMLHeader"),
                "create_parent": False,
                "root_namespace": "http://www.mic.gov.vn/TBT/QCVN_102_2016",
                "transforms": ("enveloped", "c14n"),
                "c14n": "exclusive",
                "key_info": ("subject-name", "certificate"),
                "ds_prefix": "",
            }
        ),
    }
)

# Keys a preset may set, with the type each value must have.
PRESET_KEYS: Mapping[str, type] = MappingProxyType(
    {
        "level": str,
        "form": str,
        "signature_parent": str,
        "parent_path": tuple,
        "create_parent": bool,
        "reference": str,
        "reference_path": tuple,
        "id_attributes": tuple,
        "transforms": tuple,
        "c14n": str,
        "signing_time_object": bool,
        "key_info": tuple,
        "ds_prefix": str,
        "tax_code_path": tuple,
        "signer_role": str,
        "data_object_format": str,
        "root_namespace": str,
    }
)


def preset_settings(name: str, config: Config) -> Mapping[str, object]:
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
    *, preset: str | None, config: Config, given: Mapping[str, object]
) -> XmlDocOptions:
    """Preset first, then the options given on the command line (None = not given)."""
    opts = XmlDocOptions()
    if preset is not None:
        settings = preset_settings(preset, config)
        try:
            opts = apply_settings(opts, settings, f"preset {preset}")
        except UsageError as exc:
            raise ConfigError(exc.message, subject=exc.subject, hint=exc.hint) from None
    chosen = {k: v for k, v in given.items() if v is not None and v != ()}
    if "signature_parent" in chosen:
        # An explicit XPath replaces the preset's path (and is never created).
        chosen["parent_path"] = ()
        chosen["create_parent"] = False
    if "reference" in chosen:
        chosen["reference_path"] = ()
    given_ids = chosen.get("id_attributes")
    if isinstance(given_ids, (tuple, list)):
        # Registered on top of the preset's (a preset's lower-case 'id' stays).
        chosen["id_attributes"] = tuple(dict.fromkeys((*opts.id_attributes, *given_ids)))
    return apply_settings(opts, chosen, "options")
