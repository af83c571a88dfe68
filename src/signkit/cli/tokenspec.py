"""A TokenSpec from the shared command-line option groups (see tokens/selection.py)."""

from __future__ import annotations

from signkit.tokens.access import TokenSpec
from signkit.tokens.pin import Pin
from signkit.tokens.selection import token_spec

from .options import KeyOptions, PinOptions, TokenOptions


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
    return token_spec(
        module=token.module,
        token_label=token.token_label,
        token_serial=token.token_serial,
        slot=token.slot,
        key_label=key.key_label,
        key_id=key.key_id,
        cert_fingerprint=key.cert_fingerprint,
        key_uri=token.key_uri,
        pin_file=pin.pin_file,
        pin_stdin=pin.pin_stdin,
        pin_pad=pin.pin_pad,
        env_pin=env_pin,
        allow_sha1=allow_sha1,
    )
