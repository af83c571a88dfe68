"""RFC 7512 ``pkcs11:`` URIs for token and key selection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_to_bytes

from signkit.errors import UsageError
from signkit.tokens.model import KeySelector, TokenInfo

_PATH_ATTRS = {
    "token",
    "manufacturer",
    "model",
    "serial",
    "object",
    "id",
    "type",
    "slot-id",
    "slot-description",
    "slot-manufacturer",
    "library-manufacturer",
    "library-description",
    "library-version",
}
_QUERY_ATTRS = {"module-path", "module-name", "pin-source", "pin-value"}
# The object types of a key+certificate pair (the private key, its certificate
# or its public key all name the pair).
_SIGNING_TYPES = frozenset({"private", "cert", "public"})
_SHOWN_ATTRS = (_PATH_ATTRS | _QUERY_ATTRS) - {"pin-source", "pin-value"}
"""Attributes whose values may appear in a message: none of them can hold a PIN."""
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_WORD = re.compile(r"[a-z][a-z-]{0,31}")


@dataclass(frozen=True, kw_only=True)
class Pkcs11Uri:
    """The parts of a ``pkcs11:`` URI that signkit uses."""

    selector: KeySelector
    """Token and key criteria."""
    module_path: str | None
    """``module-path`` query attribute."""
    pin_source: str | None
    """``pin-source`` query attribute (a file path or ``file:`` URI)."""
    object_type: str | None
    """``type`` (private, cert, public, ...)."""


def _name(item: str) -> str:
    """The attribute name of one ``name=value`` item, as the parser compares it."""
    return unquote(item.partition("=")[0]).strip().lower()


def redact_uri(uri: str) -> str:
    """``uri`` fit for a message: every item but the RFC 7512 attributes that
    cannot hold a PIN (token, object, module-path, ...) becomes ``***``, so
    neither ``pin-value``/``pin-source`` nor a mistyped fragment of a PIN shows."""
    scheme, colon, body = uri.partition(":")
    if not colon or scheme.lower() != "pkcs11":
        return "***"
    path, question, query = body.partition("?")

    def mask(part: str, sep: str) -> str:
        kept = (i if "=" in i and _name(i) in _SHOWN_ATTRS else "***" for i in part.split(sep))
        return sep.join(kept) if part else part

    return f"{scheme}:{mask(path, ';')}{question}{mask(query, '&')}"


def _decode(value: str, attr: str, shown: str) -> bytes:
    # RFC 7512 allows only %HH escapes; unquote_to_bytes would let "%zz" through.
    if _BAD_PERCENT.search(value):
        raise UsageError(f"bad percent-encoding in '{attr}'", subject=shown)
    return unquote_to_bytes(value)


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI; refuse the parts that would leak a PIN into argv.

    Messages quote the URI only through ``redact_uri`` and name an attribute
    only when RFC 7512 defines it: what was typed by mistake may be a PIN.
    """
    shown = redact_uri(uri)
    if not uri.lower().startswith("pkcs11:"):
        raise UsageError("not a pkcs11: URI", subject="pkcs11 URI")
    body = uri[len("pkcs11:") :]
    path, _, query = body.partition("?")
    # A PIN on the command line is refused before anything else is looked at,
    # so no other message about this URI can quote any part of it.
    if any(_name(item) == "pin-value" for item in re.split("[;&?]", body)):
        raise UsageError(
            "pin-value in a pkcs11: URI would put the PIN on the command line",
            subject="pkcs11 URI",
            hint="use SIGNKIT_PIN, --pin-file, --pin-stdin or the prompt",
        )
    values: dict[str, bytes] = {}
    for part, allowed, sep in ((path, _PATH_ATTRS, ";"), (query, _QUERY_ATTRS, "&")):
        for item in filter(None, part.split(sep)):
            name, eq, raw = item.partition("=")
            name = name.strip().lower()
            # An unknown name is shown only when it reads like a misspelt one
            # (letters and hyphens): a string of digits may be a PIN.
            shown_name = name in _QUERY_ATTRS or (
                _WORD.fullmatch(name) is not None and not name.startswith("pin")
            )
            if not eq:
                raise UsageError(
                    f"attribute '{name}' has no value"
                    if shown_name
                    else "an attribute has no value (its name is not shown: it may be a PIN)",
                    subject=shown,
                )
            if name not in allowed:
                # RFC 7512: unknown vendor attributes (x-...) may be ignored.
                if name.startswith("x-"):
                    continue
                raise UsageError(
                    f"unknown or misplaced attribute '{name}'"
                    if shown_name
                    else "unknown or misplaced attribute (its name is not shown: it may be a PIN)",
                    subject=shown,
                )
            if name in values:
                raise UsageError(f"attribute '{name}' given twice", subject=shown)
            values[name] = _decode(raw, name, shown)

    def text(name: str) -> str | None:
        raw = values.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"attribute '{name}' is not UTF-8", subject=shown) from exc

    slot = text("slot-id")
    try:
        slot_id = int(slot) if slot is not None else None
    except ValueError as exc:
        raise UsageError(f"slot-id '{slot}' is not a number", subject=shown) from exc
    if "module-name" in values:
        raise UsageError(
            "module-name is not supported: name the module with module-path or --module",
            subject=shown,
        )
    object_type = text("type")
    if object_type is not None and object_type not in _SIGNING_TYPES:
        raise UsageError(
            f"type={object_type} names an object that cannot sign "
            f"(use {', '.join(sorted(_SIGNING_TYPES))})",
            subject=shown,
        )
    version = text("library-version")
    if version is not None and not re.fullmatch(r"\d+(\.\d+)?", version):
        raise UsageError(f"library-version '{version}' is not M or M.N", subject=shown)
    # Every attribute narrows the selection (RFC 7512 §2.3: a URI matches only
    # what has all its attributes); none is accepted and then ignored.
    selector = KeySelector(
        token_label=text("token"),
        token_serial=text("serial"),
        slot=slot_id,
        key_label=text("object"),
        key_id=values.get("id"),
        token_manufacturer=text("manufacturer"),
        token_model=text("model"),
        slot_description=text("slot-description"),
        slot_manufacturer=text("slot-manufacturer"),
        library_manufacturer=text("library-manufacturer"),
        library_description=text("library-description"),
        library_version=version,
    )
    return Pkcs11Uri(
        selector=selector,
        module_path=text("module-path"),
        pin_source=text("pin-source"),
        object_type=object_type,
    )


def merge_selectors(base: KeySelector, extra: KeySelector, *, what: str) -> KeySelector:
    """Combine criteria from options and a URI; the same field twice must agree."""
    merged: dict[str, object] = {}
    for name in KeySelector.__dataclass_fields__:
        a, b = getattr(base, name), getattr(extra, name)
        if a is not None and b is not None and a != b:
            raise UsageError(f"'{name}' given twice with different values", subject=what)
        merged[name] = a if a is not None else b
    return KeySelector(**merged)  # type: ignore[arg-type]


def object_uri(token: TokenInfo, *, label: str, key_id: bytes, object_type: str) -> str:
    """The RFC 7512 URI of one object on ``token``, ready for ``--key``: the
    token by its identity (model, manufacturer, serial, label), the object by
    CKA_ID and label (each only when it has one), and its type. Every value
    is percent-encoded but the unreserved characters, as RFC 7512 allows."""
    items = [
        ("model", token.model),
        ("manufacturer", token.manufacturer),
        ("serial", token.serial),
        ("token", token.label),
    ]
    path = [f"{name}={quote(value, safe='')}" for name, value in items if value]
    if key_id:
        path.append("id=" + "".join(f"%{byte:02X}" for byte in key_id))
    if label:
        path.append(f"object={quote(label, safe='')}")
    path.append(f"type={object_type}")
    return "pkcs11:" + ";".join(path)
