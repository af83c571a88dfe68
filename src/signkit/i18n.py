"""Messages in the user's language (English or Vietnamese), at display time.

The core raises and records its messages in English: JSON reports, audit
records and logs stay in one stable language that scripts can match. The
CLI translates what a person reads, through a gettext catalogue
(``signkit/locale/<lang>.po``) whose msgids are the English messages as
written in the code, with their ``{placeholders}``:

    msgid "page {page} does not exist ({count} pages)"
    msgstr "trang {page} không tồn tại (tài liệu có {count} trang)"

A message matches a msgid when the fixed parts are equal; the placeholders'
values are carried into the msgstr (and translated too when they are
themselves catalogue messages, e.g. a reason in parentheses).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

LANGUAGES = ("en", "vi")
_LOCALE_DIR = Path(__file__).resolve().parent / "locale"
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")

_current = "en"


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


@dataclass(frozen=True)
class _Entry:
    pattern: re.Pattern[str]
    keys: tuple[str, ...]
    msgstr: str


@dataclass(frozen=True)
class Catalogue:
    """One language's messages: exact ones, then templates with placeholders."""

    exact: dict[str, str]
    templates: tuple[_Entry, ...]

    def translate(self, text: str, depth: int = 0) -> str:
        """The translation of ``text``, or ``text`` itself when none is known."""
        if text in self.exact:
            return self.exact[text]
        if depth > 2:
            return text
        for entry in self.templates:
            match = entry.pattern.fullmatch(text)
            if match is None:
                continue
            values = [self.translate(v, depth + 1) for v in match.groups()]
            out = entry.msgstr
            for key, value in zip(entry.keys, values, strict=True):
                out = out.replace(key, value)
            return out
        # "subject: message" and "message (reason)" shapes
        head, sep, tail = text.rpartition(": ")
        if sep and tail and self._known(tail):
            return f"{head}: {self.translate(tail, depth + 1)}"
        return text

    def _known(self, text: str) -> bool:
        return text in self.exact or any(e.pattern.fullmatch(text) for e in self.templates)


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (untranslated and fuzzy entries left out)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal msgid, msgstr, fuzzy
        if msgid is not None and msgstr is not None:
            key, value = "".join(msgid), "".join(msgstr)
            if key and value and not fuzzy:
                entries[key] = value
        msgid = msgstr = None
        fuzzy = False

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#,") and "fuzzy" in line:
            flush()
            fuzzy = True
            continue
        if line.startswith("#"):
            continue
        if line.startswith("msgid "):
            if msgid is not None:
                flush()
            msgid = [_unquote(line[6:])]
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [_unquote(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(_unquote(line))
    flush()
    return entries


def _unquote(s: str) -> str:
    s = s.strip()
    if len(s) < 2 or s[0] != '"' or s[-1] != '"':
        raise ValueError(f"bad .po string: {s[:40]}")
    body = s[1:-1]
    return re.sub(
        r'\\(["\\nt])', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body
    )


def compile_catalogue(entries: Mapping[str, str]) -> Catalogue:
    """Split entries into exact messages and placeholder templates (longest first)."""
    exact: dict[str, str] = {}
    templates: list[tuple[int, _Entry]] = []
    for msgid, msgstr in entries.items():
        # Every msgid is also looked up as is: code that formats after
        # translating (t("{n} signed").format(n=...)) asks for the template.
        exact[msgid] = msgstr
        keys = tuple(_PLACEHOLDER.findall(msgid))
        parts = _PLACEHOLDER.split(msgid)
        if not keys or not any(p.strip() for p in parts):
            continue  # nothing fixed to match on: it would match every message
        pattern = "(.+?)".join(re.escape(p) for p in parts)
        fixed = sum(len(p) for p in parts)
        templates.append((fixed, _Entry(re.compile(pattern, re.DOTALL), keys, msgstr)))
    templates.sort(key=lambda t: -t[0])
    return Catalogue(exact, tuple(e for _, e in templates))


@functools.cache
def catalogue(lang: str) -> Catalogue | None:
    """The catalogue of ``lang`` (None for English, the language of the code)."""
    if lang == "en":
        return None
    path = _LOCALE_DIR / f"{lang}.po"
    return compile_catalogue(parse_po(path.read_text(encoding="utf-8")))


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
