"""Build a TokenSpec from the shared command-line options."""

from __future__ import annotations

from pathlib import Path

from signkit.errors import UsageError
from signkit.tokens.access import TokenSpec
from signkit.tokens.model import KeySelector
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec
from signkit.tokens.uri import merge_selectors, parse_pkcs11_uri, redact_uri

from .options import KeyOptions, PinOptions, TokenOptions, parse_key_id


def build_token_spec(
    *,
    token: TokenOptions,
    key: KeyOptions | None = None,
    pin: PinOptions | None = None,
    env_pin: Pin | None = None,
    allow_sha1: bool = False,
) -> TokenSpec:
    """One frozen TokenSpec from the options; contradictions are usage errors."""
    key = key or KeyOptions()
    pin = pin or PinOptions()
    module = token.module
    pin_file = pin.pin_file
    selector = KeySelector(
        token_label=token.token_label,
        token_serial=token.token_serial,
        slot=token.slot,
        key_label=key.key_label,
        key_id=parse_key_id(key.key_id),
        cert_fingerprint=key.cert_fingerprint,
    )
    if token.key_uri:
        uri = parse_pkcs11_uri(token.key_uri)
        selector = merge_selectors(selector, uri.selector, what="--key")
        if uri.module_path:
            if module and module != uri.module_path:
                raise UsageError(
                    "--module and the URI's module-path differ", subject=redact_uri(token.key_uri)
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
            (PinSourceKind.STDIN, pin.pin_stdin),
            (PinSourceKind.PINPAD, pin.pin_pad),
        )
        if on
    ]
    if len(chosen) > 1:
        raise UsageError("choose one of --pin-file, --pin-stdin, --pin-pad")
    spec = PinSpec(kind=chosen[0] if chosen else None, file=pin_file, env_pin=env_pin)
    return TokenSpec(module=module, selector=selector, pin=spec, allow_sha1=allow_sha1)
