"""Telling a dependency's failure on hostile input from a bug in signkit.

pyHanko, asn1crypto and cryptography raise what they raise (KeyError,
ValueError, TypeError, zlib.error, RecursionError, ...) on documents they
cannot make sense of. Those are verdicts or input errors, never exit 70; an
exception raised by signkit's own code is a bug and must stay one.
"""

from __future__ import annotations

import os
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager

from signkit.errors import InputFault, InputFormatError, SignkitError


def library_fault(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside a dependency (the input's fault), not in signkit."""
    if isinstance(exc, MemoryError | KeyboardInterrupt | SystemExit):
        return False
    if isinstance(exc, RecursionError | InputFault):
        # nesting deeper than the stack: whichever parser met it; or signkit's
        # own reading of the input found it is not what it claims to be
        return True
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return False
    module = str(last.tb_frame.f_globals.get("__name__", ""))
    if module == "signkit.patches":
        return True  # signkit's stand-ins for a dependency's own code raise its errors
    if module == "signkit" or module.startswith("signkit."):
        return False
    # An installed package or the standard library; code of neither (a
    # program that imports signkit, a test's stand-in) is not a dependency.
    return _installed(last.tb_frame.f_code.co_filename)


def _installed(filename: str) -> bool:
    return filename.startswith(("<frozen ", *_LIBRARY_DIRS)) or any(
        part in ("site-packages", "dist-packages") for part in filename.split(os.sep)
    )


_LIBRARY_DIRS = tuple({sysconfig.get_paths()[name] + os.sep for name in ("stdlib", "platstdlib")})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def describe(exc: BaseException) -> str:
    """One line about a dependency's failure, for a verdict's detail or an input error."""
    text = _first_line(exc)
    if isinstance(exc, InputFault) and text:
        return text[:200]  # signkit's own words
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name


@contextmanager
def input_faults(subject: str, what: str) -> Iterator[None]:
    """Inside, a dependency's exception on the input ``subject`` becomes the
    InputFormatError ``<what> (<its message>)``. signkit's own exceptions
    (a bug) and OSError (the disk's or the system's) go through as they are."""
    try:
        yield
    except (SignkitError, OSError):
        raise
    except Exception as exc:
        if not library_fault(exc):
            raise
        text = _first_line(exc)[:160]
        raise InputFormatError(f"{what} ({text or type(exc).__name__})", subject=subject) from None
