"""Messages in the user's language (English or Vietnamese), at display time.

The core raises and records its messages in English: JSON reports, audit
records and logs stay in one stable language that scripts can match. The
CLI translates what a person reads, through a gettext catalogue whose
msgids are the English messages as written in the code, with their
``{placeholders}``:

    msgid "page {page} does not exist ({count} pages)"
    msgstr "trang {page} không tồn tại (tài liệu có {count} trang)"

Translators edit ``signkit/locale/<lang>.po``; the build compiles it to
``signkit/locale/<lang>/LC_MESSAGES/signkit.mo`` (see setup.py), which the
standard ``gettext`` module reads here. The same catalogue also serves the
messages of the command-line framework (usage errors, help headings), which
look their text up through ``gettext.gettext``.

A message whose values are already filled in matches a msgid when the fixed
parts are equal; the placeholders' values are carried into the msgstr (and
translated too when they are themselves catalogue messages, e.g. a reason in
parentheses).
"""

from __future__ import annotations

import functools
import gettext
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "vi")
DOMAIN = "signkit"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")

_current = "en"
_details = False

# Words that mark a value as English prose: a library's own message carried
# into one of ours ("malformed PDF (Could not read malformed PDF file)").
_ENGLISH = frozenset(
    "a an and are at be by cannot could does during error failed for found from has in "
    "invalid is not no of on or skipping the to unable unexpected was while with".split()
)


def choose_language(option: str | None, environ: Mapping[str, str] = os.environ) -> str:
    """--lang wins; else the POSIX locale variables in their order of precedence."""
    if option:
        return option
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return "vi" if value.lower().startswith("vi") else "en"
    return "en"


def set_language(lang: str) -> None:
    """Select the language of every message shown from now on (the CLI calls it once)."""
    global _current
    _current = lang if lang in LANGUAGES else "en"


def language() -> str:
    """The selected language."""
    return _current


def show_details(on: bool) -> None:
    """Keep the libraries' own English messages inside translated ones (-v)."""
    global _details
    _details = on


# A name a library quotes in its message (a certificate's subject, in
# Vietnamese): the prose around it decides. A message cut short may leave
# the last quote open.
_QUOTED_NAME = re.compile(r'"[^"]*(?:"|$)')


def foreign(text: str) -> bool:
    """Whether ``text`` is English prose (a library's message), not a name,
    a path, a number or a code."""
    if text[:1] in "'\"":
        return False
    if text.startswith("[Errno "):  # the system's own words ("Connection refused")
        return True
    prose = _QUOTED_NAME.sub(" ", text)
    if not prose.isascii():
        return False
    words = prose.split()
    return len(words) >= 3 and any(w.strip(".,;:()").lower() in _ENGLISH for w in words)


def _balanced(value: str) -> bool:
    depth = 0
    for ch in value:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


_EMPTY_BRACKETS = re.compile(r"\s*\(\s*\)")


@dataclass(frozen=True)
class _Template:
    pattern: re.Pattern[str]
    keys: tuple[str, ...]
    msgstr: str


class Catalogue:
    """One language's messages: exact lookups, then templates with placeholders."""

    def __init__(self, entries: Mapping[str, str]) -> None:
        # Every msgid is also looked up as is: code that formats after
        # translating (t("{n} signed").format(n=...)) asks for the template.
        self.exact = dict(entries)
        templates: list[tuple[int, _Template]] = []
        for msgid, msgstr in entries.items():
            keys = tuple(_PLACEHOLDER.findall(msgid))
            parts = _PLACEHOLDER.split(msgid)
            if not keys or not any(ch.isalpha() for p in parts for ch in p):
                # nothing but punctuation to match on ("{name}: {message}"): it
                # would take any "subject: reason" apart and lose the reason
                continue
            pattern = "(.+?)".join(re.escape(p) for p in parts)
            fixed = sum(len(p) for p in parts)
            templates.append((fixed, _Template(re.compile(pattern, re.DOTALL), keys, msgstr)))
        templates.sort(key=lambda item: -item[0])
        self.templates = tuple(template for _, template in templates)

    def translate(self, text: str, depth: int = 0) -> str:
        """The translation of ``text``, or ``text`` itself when none is known."""
        found = self.exact.get(text)
        if found is not None:
            return found
        if depth > 2:
            return text
        for entry in self.templates:
            match = entry.pattern.fullmatch(text)
            if match is None or not all(_balanced(v) for v in match.groups()):
                # a value never holds half a bracket: "token 'x' (serial …, slot 7):
                # PIN accepted (prompt)" is not one token name
                continue
            values = [self._value(v, depth) for v in match.groups()]
            out = entry.msgstr
            for key, value in zip(entry.keys, values, strict=True):
                out = out.replace(key, value)
            # a library's English left out (shown with -v): no empty brackets
            return _EMPTY_BRACKETS.sub("", out).rstrip(": ")
        # a list of phrases ("expires in 41 days (on …); revocation not checked")
        if "; " in text:
            parts = text.split("; ")
            done = [self.translate(p, depth + 1) for p in parts]
            if done != parts:
                return "; ".join(done)
        # "subject: message" shapes
        head, sep, tail = text.rpartition(": ")
        if sep and tail and self._known(tail):
            return f"{head}: {self.translate(tail, depth + 1)}"
        return text

    def _value(self, value: str, depth: int) -> str:
        """A placeholder's value: translated when it is a message of ours; a
        library's English message is left out unless details are asked for."""
        translated = self.translate(value, depth + 1)
        if translated == value and not _details and foreign(value):
            return ""
        return translated

    def _known(self, text: str) -> bool:
        return text in self.exact or any(e.pattern.fullmatch(text) for e in self.templates)


class _CompiledCatalogue(gettext.GNUTranslations):
    """A .mo file as the standard library reads it, keeping its msgids: the
    templates are built from them. ``_parse`` is the documented hook for
    reading a catalogue; ``_catalog`` is what the standard one fills."""

    entries: dict[str, str]

    def _parse(self, fp: Any) -> None:
        super()._parse(fp)
        catalog: dict[object, str] = self._catalog  # type: ignore[attr-defined]
        self.entries = {k: v for k, v in catalog.items() if isinstance(k, str) and k and v}


def compiled_path(lang: str) -> Path:
    """Where the build puts the compiled catalogue of ``lang``."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"


def load_catalogue(lang: str) -> Catalogue:
    """The compiled catalogue of ``lang``; FileNotFoundError when the build
    did not make it (a source tree nobody installed)."""
    compiled = gettext.translation(
        DOMAIN, str(LOCALE_DIR), languages=[lang], class_=_CompiledCatalogue
    )
    assert isinstance(compiled, _CompiledCatalogue)  # noqa: S101 (class_ above)
    return Catalogue(compiled.entries)


@functools.cache
def catalogue(lang: str) -> Catalogue | None:
    """The catalogue of ``lang`` (None for English, the language of the code,
    and for a language whose catalogue is not installed)."""
    if lang == "en":
        return None
    try:
        return load_catalogue(lang)
    except FileNotFoundError:
        return None


def missing_catalogues(languages: Iterable[str] = LANGUAGES) -> list[str]:
    """The languages whose compiled catalogue is not installed."""
    return [lang for lang in languages if lang != "en" and not compiled_path(lang).is_file()]


def t(text: str) -> str:
    """``text`` in the selected language."""
    cat = catalogue(_current)
    return text if cat is None else cat.translate(text)


def format_datetime(moment: datetime) -> str:
    """A date and time for people: ISO 8601 in English, dd/mm/yyyy in Vietnamese,
    with the '+07:00'-style offset either way."""
    zone = moment.strftime("%z")
    offset = f"{zone[:3]}:{zone[3:5]}" if zone else ""
    if _current == "vi":
        return moment.strftime("%d/%m/%Y %H:%M:%S") + (f" {offset}" if offset else "")
    return moment.isoformat(timespec="seconds")
