"""Options of an XML signature: what ``sign xml`` takes from the command line,
a preset or a manifest row, validated before any document is read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from signkit.errors import UsageError

EXTENSIONS = (".xml", ".edxml")
LEVELS = ("plain", "B-B", "B-T", "B-LT")
TIMESTAMPED = ("B-T", "B-LT")
FORMS = ("enveloped", "enveloping", "detached")
C14N = {
    "inclusive": "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "exclusive": "http://www.w3.org/2001/10/xml-exc-c14n#",
}
TRANSFORMS = ("enveloped", "c14n")
KEY_INFO = ("subject-name", "certificate", "chain")
NCNAME = re.compile(r"[^\W\d][\w.\-\u00b7\u0300-\u036f\u203f\u2040]*")
"""An XML name without a colon (NCName): a letter or '_', then letters,
digits, '.', '-', '_' and combining marks. Use ``fullmatch``."""


@dataclass(frozen=True, kw_only=True)
class XmlDocOptions:
    """Per-document signature settings (presets and the command line fill them)."""

    level: str = "plain"
    """'plain' XMLDSig, or XAdES 'B-B' / 'B-T'."""
    form: str = "enveloped"
    """enveloped, enveloping or detached."""
    reference: str | None = None
    """Sign the element with this Id (default: the whole document)."""
    reference_path: tuple[str, ...] = ()
    """Sign the element at this path of local names (its Id attribute is referenced)."""
    id_attributes: tuple[str, ...] = ("Id",)
    """Attribute names that carry element Ids."""
    signature_parent: str | None = None
    """XPath of the element the Signature is appended to (default: the root)."""
    parent_path: tuple[str, ...] = ()
    """Path of local names of the Signature's parent (a preset's way)."""
    create_parent: bool = False
    """Create the missing end of ``parent_path``."""
    signature_id: str | None = None
    """Id of the Signature element (default: a random one)."""
    c14n: str = "inclusive"
    """Canonicalisation of SignedInfo and of references."""
    transforms: tuple[str, ...] = ()
    """Transforms of the data reference (empty: what the form needs)."""
    signing_time_object: bool = False
    """Add an Object with SignatureProperties/SigningTime, referenced."""
    key_info: tuple[str, ...] = ("certificate", "chain")
    """What KeyInfo/X509Data carries: subject-name, certificate, chain."""
    ds_prefix: str = "ds"
    """Namespace prefix of the XMLDSig elements ('' = default namespace)."""
    tax_code_path: tuple[str, ...] = ()
    """Element whose text must equal the certificate's MST: tax code (warning)."""
    signer_role: str | None = None
    """XAdES claimed signer role."""
    data_object_format: str | None = None
    """XAdES DataObjectFormat MIME type of the signed data."""
    root_namespace: str | None = None
    """Namespace the root element must be in (a preset's guard against another layout)."""


# Manifest columns (long option names or field names).
MANIFEST_FIELDS = ("level", "reference", "signature_id", "signer_role", "data_object_format")
OVERRIDABLE = frozenset(MANIFEST_FIELDS) | frozenset(f.replace("_", "-") for f in MANIFEST_FIELDS)
_TUPLE_FIELDS = frozenset(
    ("reference_path", "id_attributes", "parent_path", "transforms", "key_info", "tax_code_path")
)


def apply_settings(base: XmlDocOptions, values: Mapping[str, object], source: str) -> XmlDocOptions:
    """``base`` with ``values`` (a preset table or manifest row) applied and checked."""
    known = {f.name for f in fields(XmlDocOptions)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in known:
            raise UsageError(f"unknown setting '{key}'", subject=source)
        if name in _TUPLE_FIELDS:
            if isinstance(value, str):
                value = tuple(p for p in value.split("/") if p) if "path" in name else (value,)
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise UsageError(f"'{key}' must be a list of names", subject=source)
            value = tuple(value)
        elif name in ("create_parent", "signing_time_object"):
            if not isinstance(value, bool):
                raise UsageError(f"'{key}' must be true or false", subject=source)
        elif value is not None and not isinstance(value, str):
            raise UsageError(f"'{key}' must be text", subject=source)
        changes[name] = value
    return validate(replace(base, **changes))


def validate(opts: XmlDocOptions) -> XmlDocOptions:
    """Refuse contradictory or malformed settings before any document is read."""
    if opts.level not in LEVELS:
        raise UsageError(f"level must be one of {', '.join(LEVELS)}", subject=opts.level)
    if opts.form not in FORMS:
        raise UsageError(f"form must be one of {', '.join(FORMS)}", subject=opts.form)
    if opts.c14n not in C14N:
        raise UsageError("c14n must be 'inclusive' or 'exclusive'", subject=opts.c14n)
    for t in opts.transforms:
        if t not in TRANSFORMS:
            raise UsageError(f"transforms are {', '.join(TRANSFORMS)}", subject=t)
    for k in opts.key_info:
        if k not in KEY_INFO:
            raise UsageError(f"key_info items are {', '.join(KEY_INFO)}", subject=k)
    for path in (opts.parent_path, opts.reference_path, opts.tax_code_path):
        for name in path:
            if not NCNAME.fullmatch(name):
                raise UsageError("paths are element local names", subject=name)
    for name in opts.id_attributes:
        if not NCNAME.fullmatch(name):
            raise UsageError("not an attribute name", subject=name)
    if opts.signature_id is not None and not NCNAME.fullmatch(opts.signature_id):
        raise UsageError("--signature-id must be an XML name (NCName)", subject=opts.signature_id)
    if opts.reference is not None and not NCNAME.fullmatch(opts.reference):
        raise UsageError("--reference takes an Id value (an XML name)", subject=opts.reference)
    if opts.ds_prefix and not NCNAME.fullmatch(opts.ds_prefix):
        raise UsageError("ds_prefix must be an XML name", subject=opts.ds_prefix)
    if opts.signature_parent is not None:
        from lxml import etree

        try:
            etree.XPath(opts.signature_parent)
        except etree.XPathSyntaxError:
            raise UsageError(
                "--signature-parent is not a valid XPath", subject=opts.signature_parent
            ) from None
    if opts.form != "enveloped" and (opts.signature_parent or opts.parent_path):
        raise UsageError("a signature parent only applies to the enveloped form")
    if opts.data_object_format is not None and opts.level == "plain":
        raise UsageError("--data-object-format is a XAdES property (use --level B-B or B-T)")
    if opts.signer_role is not None and opts.level == "plain":
        raise UsageError("--signer-role is a XAdES property (use --level B-B or B-T)")
    return opts


def resolve_options(defaults: XmlDocOptions, overrides: Mapping[str, str]) -> XmlDocOptions:
    """Apply a manifest row's overrides to the batch defaults (validated already)."""
    if not overrides:
        return defaults
    return apply_settings(defaults, dict(overrides), "manifest")
