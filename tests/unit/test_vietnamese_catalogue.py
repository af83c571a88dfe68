"""No English word left in a Vietnamese string of the catalogue.

Every msgid of vi.po is English: together they are the vocabulary a
translation must not fall back to. Each msgstr is searched for those words,
after what is not prose is taken out: placeholders, quoted and back-quoted
text, option and attribute names, paths and URLs, codes in capitals, and an
English term glossed in brackets after its Vietnamese one ("thiết bị ký số
(token)"). What is left must be Vietnamese, or a name or code on the list.
"""

from __future__ import annotations

import re

from support.messages import catalogue_entries

# Names, codes and values a Vietnamese sentence keeps as they are.
ALLOWED = frozenset(
    {
        # standards, formats, algorithms, products
        "pdf",
        "xml",
        "html",
        "json",
        "csv",
        "toml",
        "pem",
        "der",
        "pkcs",
        "ocsp",
        "crl",
        "tsa",
        "ca",
        "uri",
        "url",
        "http",
        "utc",
        "iso",
        "etsi",
        "xades",
        "pades",
        "cades",
        "xmldsig",
        "dtd",
        "doctype",
        "ssl",
        "rsa",
        "pss",
        "ecdsa",
        "sha",
        "unicode",
        "utf",
        "bom",
        "tcvn3",
        "vni",
        "truetype",
        "times",
        "new",
        "roman",
        "liberation",
        "serif",
        "dejavu",
        "debian",
        "poppler",
        "pdftotext",
        "pdfimages",
        "pyhanko",
        "xsdata",
        "pip",
        "install",
        "softhsm",
        "opencryptoki",
        "signkit",
        "syslog",
        "journald",
        "systemd",
        "nagios",
        "tpm",
        "chmod",
        "mib",
        "dpi",
        "mm",
        "id",
        "hex",
        "pin",
        "so",
        "ok",
        "seq",
        "true",
        "false",
        "shell",
        "docmdp",
        "byte",
        "bit",
        "signature",
        "signedinfo",
        "signaturevalue",
        "signedproperties",
        "signingtime",
        "signatureproperty",
        "signaturemethod",
        "digestmethod",
        "x509certificate",
        "tstinfo",
        "econtent",
        "xpath",
        # XML element names a message quotes as they are written
        "reference",
        "rsapssparams",
        "filter",
        "include",
        "manifest",
        "ds",
        "excel",
        "libreoffice",
        "word",
        "vnpt",
        "viettel",
        "bkav",
        "neac",
        # option values, manifest columns, commands and programs named in help
        "extend",
        "hard",
        "soft",
        "off",
        "inclusive",
        "input",
        "output",
        "reason",
        "level",
        "preset",
        "lines",
        "cron",
        "cert",
        "check",
        "bash",
        "zsh",
        "fish",
        "text",
        "prometheus",
        "parallel",
        # Vietnamese words spelt like English ones
        "in",
        "do",
        "an",
        "con",
        "ban",
        "tin",
        "chi",
        "hay",
        "may",
        "cho",
        "the",
        "to",
        "sao",
        "tab",
        "form",
    }
)

_PLACEHOLDER = re.compile(r"\{[^{}]*\}")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|`[^`]*`|\[[^\]]*\]")
_GLOSS = re.compile(r"\(\s*[A-Za-z][A-Za-z0-9 _#./-]{0,40}\)")
_NOT_PROSE = re.compile(
    r"\bsignkit(?:\s+[a-z][\w-]*)+"  # commands
    r"|--?[A-Za-z][\w-]*(?:\s+[a-z]+\b(?!\w))?"  # options, and a value after one
    r"|\S*[/.@]\S+"  # paths, URLs, file names
    r"|\b\w+=\S*"  # key=value
    r"|\b[a-z]+(?:[-_][a-z0-9]+)+\b"  # attribute and column names (pin-source, doc_number)
    r"|\b[A-Z0-9_#-]{2,}\b"  # codes (HASH_FAILURE, PKCS#11, B-LT)
    r"|\b[A-Za-z]+[a-z][A-Z]\w*"  # element and field names (SignatureTimeStamp, XPath)
)
_WORD = re.compile(r"[A-Za-z]+")


def english_vocabulary(msgids: list[str]) -> set[str]:
    words: set[str] = set()
    for msgid in msgids:
        text = _NOT_PROSE.sub(" ", _QUOTED.sub(" ", _PLACEHOLDER.sub(" ", msgid)))
        words.update(w.lower() for w in _WORD.findall(text) if len(w) > 1)
    return words - ALLOWED


def english_left(msgstr: str, vocabulary: set[str]) -> list[str]:
    text = _PLACEHOLDER.sub(" ", msgstr)
    text = _QUOTED.sub(" ", text)
    text = _GLOSS.sub(" ", text)
    text = _NOT_PROSE.sub(" ", text)
    # a word is Vietnamese when it carries a Vietnamese letter or tone mark
    return [w for w in re.findall(r"\w+", text) if w.isascii() and w.lower() in vocabulary]


def test_no_english_word_in_a_vietnamese_string() -> None:
    entries = catalogue_entries()
    vocabulary = english_vocabulary(list(entries))
    assert {"signature", "certificate", "found"} & (vocabulary | ALLOWED)
    leaks = {
        msgstr: found for msgstr in entries.values() if (found := english_left(msgstr, vocabulary))
    }
    assert not leaks, "\n".join(f"{words}: {text}" for text, words in leaks.items())


def test_the_check_finds_an_english_word() -> None:
    """The check itself: an English word left in a translation is found,
    a gloss in brackets and a code are not."""
    vocabulary = english_vocabulary(["the signature was not found", "file not found"])
    assert english_left("không tìm thấy file {path}", vocabulary) == ["file"]
    assert english_left("chữ ký not found", vocabulary) == ["not", "found"]
    assert english_left("tệp danh sách (file) HASH_FAILURE --file", vocabulary) == []


def help_texts() -> dict[str, str]:
    """Every help text `--help` shows (commands' and options'), with where it is."""
    import importlib

    import typer.main

    from signkit.cli.app import COMMANDS

    found: dict[str, str] = {}

    def walk(cmd: object, path: str) -> None:
        for attr in ("help", "short_help"):
            text = getattr(cmd, attr, None)
            if text:
                found.setdefault(text, path)
        for param in getattr(cmd, "params", []):
            if getattr(param, "help", None):
                found.setdefault(
                    param.help, f"{path} {param.opts[0] if param.opts else param.name}"
                )
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}")

    for name, (module, short) in COMMANDS.items():
        found.setdefault(short, name)
        walk(typer.main.get_command(importlib.import_module(module).app), name)
    return found


def test_help_is_vietnamese_too() -> None:
    """Regression: `--help` had Vietnamese headings around English help texts."""
    known = catalogue_entries()
    missing = {where: text for text, where in help_texts().items() if text not in known}
    assert not missing, missing
