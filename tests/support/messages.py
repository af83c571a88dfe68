"""Find the messages people read in signkit's source (an xgettext for our style).

    python tests/support/messages.py            # msgids missing from vi.po, as .po stubs

Messages are the first argument of an error constructor (``...Error(...)``),
of ``warn(...)``/``info(...)``, and every ``hint=``; f-strings become
templates with their ``{expressions}`` as placeholders, as in the catalogue.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "signkit"
CALLS = ("warn", "info", "t", "summary", "result", "error")


def _template(node: ast.expr, source: str) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            elif isinstance(part, ast.FormattedValue):
                expr = ast.get_source_segment(source, part.value) or "?"
                spec = ""
                if part.format_spec is not None:
                    spec = ":" + (_template(part.format_spec, source) or "")
                conv = "" if part.conversion == -1 else "!" + chr(part.conversion)
                out.append("{" + expr + conv + spec + "}")
        return "".join(out)
    return None


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def messages(root: Path = SRC) -> dict[str, str]:
    """template -> 'file:line' of its first use."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            candidates: list[ast.expr] = []
            if (name.endswith("Error") or name in CALLS) and node.args:
                candidates.append(node.args[0])
            candidates += [k.value for k in node.keywords if k.arg == "hint"]
            for arg in candidates:
                text = _template(arg, source)
                if text and any(c.isalpha() for c in text):
                    found.setdefault(text, f"{path.relative_to(root.parent)}:{node.lineno}")
    return found


def catalogue_entries(lang: str = "vi") -> dict[str, str]:
    """msgid -> msgstr of the translators' ``locale/<lang>.po``, read with Babel
    (untranslated and fuzzy entries left out, as the build leaves them out)."""
    from babel.messages.pofile import read_po

    with (SRC / "locale" / f"{lang}.po").open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    return {
        str(m.id): str(m.string)
        for m in catalog
        if m.id and isinstance(m.id, str) and m.string and not m.fuzzy
    }


def main() -> int:
    known = catalogue_entries()
    missing = {m: where for m, where in messages().items() if m not in known}
    for text, where in missing.items():
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        print(f'#: {where}\nmsgid "{escaped}"\nmsgstr ""\n')
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
