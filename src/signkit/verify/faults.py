"""Telling a dependency's failure on hostile input from a bug in signkit.

pyHanko, asn1crypto and cryptography raise what they raise (KeyError,
ValueError, TypeError, zlib.error, RecursionError, ...) on documents they
cannot make sense of. Those are verdicts or input errors, never exit 70; an
exception raised by signkit's own code is a bug and must stay one.
"""

from __future__ import annotations

from signkit.errors import InputFault


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
    return not (module == "signkit" or module.startswith("signkit."))


def describe(exc: BaseException) -> str:
    """One line about a dependency's failure, for a verdict's detail or an input error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, InputFault) and text:
        return text[:200]  # signkit's own words
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name
