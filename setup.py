"""signkit's one build step beyond pyproject.toml: compile the message catalogues.

Translators edit ``src/signkit/locale/LANG.po``; gettext reads the compiled
``signkit/locale/LANG/LC_MESSAGES/signkit.mo``. The .mo files are build
outputs, never committed: a wheel carries them, and an editable install
(``./dev setup``, ``pip install -e .``) writes them next to the .po files.
Babel compiles them (a build requirement only, not needed at run time).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import ClassVar

from setuptools import Command, setup
from setuptools.command.build import build

ROOT = Path(__file__).resolve().parent
SRC = ROOT / "src"
LOCALE = Path("signkit") / "locale"
DOMAIN = "signkit"


def compile_catalogue(po: Path, mo: Path) -> None:
    """Compile one .po file (untranslated and fuzzy entries are left out, as
    msgfmt does); the file is rewritten only when its bytes change."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        catalog = read_po(fh, locale=po.stem, domain=DOMAIN, abort_invalid=True)
    out = io.BytesIO()
    write_mo(out, catalog)
    mo.parent.mkdir(parents=True, exist_ok=True)
    if not mo.is_file() or mo.read_bytes() != out.getvalue():
        mo.write_bytes(out.getvalue())


class build_catalogues(Command):
    """Compile src/signkit/locale/*.po into gettext .mo files."""

    description = "compile the message catalogues (.po -> .mo)"
    user_options: ClassVar = [("inplace", "i", "write the .mo files into the source tree")]
    boolean_options: ClassVar = ["inplace"]

    def initialize_options(self) -> None:
        self.inplace = False
        self.editable_mode = False
        self.build_lib: str | None = None

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def _targets(self) -> dict[Path, Path]:
        root = SRC if (self.inplace or self.editable_mode) else Path(str(self.build_lib))
        return {
            po: root / LOCALE / po.stem / "LC_MESSAGES" / f"{DOMAIN}.mo"
            for po in sorted((SRC / LOCALE).glob("*.po"))
        }

    def run(self) -> None:
        for po, mo in self._targets().items():
            compile_catalogue(po, mo)

    def get_source_files(self) -> list[str]:
        # setuptools wants them relative to this file, /-separated
        return [po.relative_to(ROOT).as_posix() for po in self._targets()]

    def get_outputs(self) -> list[str]:
        return [str(mo) for mo in self._targets().values()]

    def get_output_mapping(self) -> dict[str, str]:
        return {str(mo): po.relative_to(ROOT).as_posix() for po, mo in self._targets().items()}


class build_with_catalogues(build):
    sub_commands: ClassVar = [*build.sub_commands, ("build_catalogues", None)]


setup(cmdclass={"build": build_with_catalogues, "build_catalogues": build_catalogues})
