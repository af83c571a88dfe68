"""Secrets handed over in the environment (SIGNKIT_PIN, the PDF and TSA
passwords), taken out of it before anything else runs.

Removing a variable from ``os.environ`` only drops it from the array that
children will inherit; the original environment block, which
``/proc/<pid>/environ`` shows to the user's other processes and which every
forked worker copies, still holds the text. So the value is also overwritten
there, in place, before the first fork, thread or exec.
"""

from __future__ import annotations

import os

SECRET_VARIABLES = ("SIGNKIT_PIN", "SIGNKIT_PDF_PASSWORD", "SIGNKIT_TSA_PASSWORD")

_taken: dict[str, str] = {}


def capture() -> None:
    """Move every secret variable out of the environment (idempotent)."""
    for name in SECRET_VARIABLES:
        if name in os.environ:
            _scrub_block(name)
            value = os.environ.pop(name)
            if name not in _taken:
                _taken[name] = value


def take(name: str) -> str | None:
    """The value ``capture`` took for ``name`` (once), or None."""
    return _taken.pop(name, None)


def _scrub_block(name: str) -> None:
    """Overwrite ``NAME=value`` in the process's C environment with NUL bytes."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        environ = ctypes.POINTER(ctypes.c_void_p).in_dll(libc, "environ")
    except (OSError, ValueError, AttributeError):
        return
    prefix = os.fsencode(name) + b"="
    index = 0
    while True:
        address = environ[index]
        if not address:
            return
        entry = ctypes.string_at(address)
        if entry.startswith(prefix):
            ctypes.memset(address + len(prefix), 0, len(entry) - len(prefix))
        index += 1
