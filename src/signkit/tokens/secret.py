"""A PIN held in memory; kept free of imports so the CLI can capture it at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import MutableMapping

PIN_ENV = "SIGNKIT_PIN"


class Pin:
    """A PIN in memory. Its repr never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            from signkit.errors import PinUnavailableError

            raise PinUnavailableError("the PIN is empty")
        self._value = value

    def reveal(self) -> str:
        """The value, for the one call that hands it to the token."""
        return self._value

    def __repr__(self) -> str:
        return "Pin(***)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a PIN must not be pickled (it would cross a process boundary)")


def take_env_pin(environ: MutableMapping[str, str]) -> Pin | None:
    """Remove SIGNKIT_PIN from the environment and return it, so no child inherits it."""
    value = environ.pop(PIN_ENV, None)
    return Pin(value) if value else None
