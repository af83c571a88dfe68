"""RFC 7512 ``pkcs11:`` URIs for token and key selection."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from signkit.errors import UsageError
from signkit.tokens.model import KeySelector

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


def _decode(value: str, attr: str, uri: str) -> bytes:
    try:
        return unquote_to_bytes(value)
    except ValueError as exc:  # pragma: no cover - unquote_to_bytes is lenient
        raise UsageError(f"bad percent-encoding in '{attr}'", subject=uri) from exc


def parse_pkcs11_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 URI; refuse the parts that would leak a PIN into argv."""
    if not uri.lower().startswith("pkcs11:"):
        raise UsageError("not a pkcs11: URI", subject=uri)
    body = uri[len("pkcs11:") :]
    path, _, query = body.partition("?")
    values: dict[str, bytes] = {}
    for part, allowed, sep in ((path, _PATH_ATTRS, ";"), (query, _QUERY_ATTRS, "&")):
        for item in filter(None, part.split(sep)):
            name, eq, raw = item.partition("=")
            name = name.strip().lower()
            if not eq:
                raise UsageError(f"attribute '{name}' has no value", subject=uri)
            if name not in allowed:
                # RFC 7512: unknown vendor attributes (x-...) may be ignored.
                if name.startswith("x-"):
                    continue
                raise UsageError(f"unknown or misplaced attribute '{name}'", subject=uri)
            if name in values:
                raise UsageError(f"attribute '{name}' given twice", subject=uri)
            values[name] = _decode(raw, name, uri)
    if "pin-value" in values:
        raise UsageError(
            "pin-value in a pkcs11: URI would put the PIN on the command line",
            subject="pkcs11 URI",
            hint="use SIGNKIT_PIN, --pin-file, --pin-stdin or the prompt",
        )

    def text(name: str) -> str | None:
        raw = values.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"attribute '{name}' is not UTF-8", subject=uri) from exc

    slot = text("slot-id")
    try:
        slot_id = int(slot) if slot is not None else None
    except ValueError as exc:
        raise UsageError(f"slot-id '{slot}' is not a number", subject=uri) from exc
    if "module-name" in values:
        raise UsageError(
            "module-name is not supported: name the module with module-path or --module",
            subject=uri,
        )
    object_type = text("type")
    if object_type is not None and object_type not in _SIGNING_TYPES:
        raise UsageError(
            f"type={object_type} names an object that cannot sign "
            f"(use {', '.join(sorted(_SIGNING_TYPES))})",
            subject=uri,
        )
    version = text("library-version")
    if version is not None and not re.fullmatch(r"\d+(\.\d+)?", version):
        raise UsageError(f"library-version '{version}' is not M or M.N", subject=uri)
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
