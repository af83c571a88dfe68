"""XML signature layouts (presets): where a signature goes and what it signs.

A preset is data: a table of option values that ``sign xml`` would otherwise
take from the command line. Paths are tuples of element local names from the
root (namespace-agnostic, so a layout fits documents with or without a
default namespace). Users add their own in the config file's
``[xml-presets.NAME]`` tables with the same keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

BUILTIN: Mapping[str, Mapping[str, Any]] = MappingProxyType(
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
    }
)
