"""One TokenSpec from what a user names: module, token, key, PIN source.

The CLI's options and the library API (signkit.api) both come through here,
so a contradiction (two PIN sources, a URI naming another module) is refused
the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

from signkit.errors import UsageError
from signkit.tokens.access import TokenSpec
from signkit.tokens.model import KeySelector
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec
from signkit.tokens.uri import merge_selectors, parse_pkcs11_uri, redact_uri


def parse_key_id(value: str | None) -> bytes | None:
    """Hex (optionally with ':' separators or 0x) to bytes."""
    if value is None:
        return None
    cleaned = value.replace(":", "").replace(" ", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise UsageError("--key-id must be hexadecimal", subject=value) from None


def token_spec(
    *,
    module: str | None = None,
    token_label: str | None = None,
    token_serial: str | None = None,
    slot: int | None = None,
    key_label: str | None = None,
    key_id: str | None = None,
    cert_fingerprint: str | None = None,
    key_uri: str | None = None,
    pin_file: Path | None = None,
    pin_stdin: bool = False,
    pin_pad: bool = False,
    env_pin: Pin | None = None,
    allow_sha1: bool = False,
) -> TokenSpec:
    """One frozen TokenSpec; contradictions are usage errors (never quoting a PIN)."""
    selector = KeySelector(
        token_label=token_label,
        token_serial=token_serial,
        slot=slot,
        key_label=key_label,
        key_id=parse_key_id(key_id),
        cert_fingerprint=cert_fingerprint,
    )
    if key_uri:
        uri = parse_pkcs11_uri(key_uri)
        selector = merge_selectors(selector, uri.selector, what="--key")
        if uri.module_path:
            if module and module != uri.module_path:
                raise UsageError(
                    "--module and the URI's module-path differ", subject=redact_uri(key_uri)
                )
            module = uri.module_path
        if uri.pin_source:
            if pin_file is not None:
                raise UsageError("--pin-file and the URI's pin-source both given")
            pin_file = Path(uri.pin_source.removeprefix("file:"))
    chosen = [
        kind
        for kind, on in (
            (PinSourceKind.FILE, pin_file is not None),
            (PinSourceKind.STDIN, pin_stdin),
            (PinSourceKind.PINPAD, pin_pad),
        )
        if on
    ]
    if len(chosen) > 1:
        raise UsageError("choose one of --pin-file, --pin-stdin, --pin-pad")
    spec = PinSpec(kind=chosen[0] if chosen else None, file=pin_file, env_pin=env_pin)
    return TokenSpec(module=module, selector=selector, pin=spec, allow_sha1=allow_sha1)
