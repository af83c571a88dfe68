"""signkit's build steps beyond pyproject.toml: compile the message
catalogues, and write the manual pages from the command line.

Translators edit ``src/signkit/locale/LANG.po``; gettext reads the compiled
``signkit/locale/LANG/LC_MESSAGES/signkit.mo``. The .mo files are build
outputs, never committed: a wheel carries them, and an editable install
(``./dev setup``, ``pip install -e .``) writes them next to the .po files.
Babel compiles them (a build requirement only, not needed at run time).

The manual pages (signkit(1), signkit-sign-pdf(1), …) are generated from the
CLI's own declarations (``signkit.cli.manpages``, Typer being a build
requirement too) into ``build/man/``, and installed as data under
``share/man/man1`` (pipx links them into ``~/.local/share/man``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import ClassVar

from setuptools import Command, setup
from setuptools.command.build import build

try:
    from setuptools.command.install_data import install_data
except ImportError:  # setuptools before 69 takes it from distutils
    from distutils.command.install_data import install_data

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


MAN_DIR = ROOT / "build" / "man"


class build_manpages(Command):
    """Write the manual pages from the command line's declarations."""

    description = "write the manual pages (build/man/*.1) from the CLI"
    user_options: ClassVar = []

    def initialize_options(self) -> None:
        self.editable_mode = False

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        import sys

        sys.path.insert(0, str(SRC))
        try:
            from signkit.cli.manpages import write_manpages

            write_manpages(MAN_DIR)
        finally:
            sys.path.remove(str(SRC))

    def get_source_files(self) -> list[str]:
        return []

    def get_outputs(self) -> list[str]:
        return [str(p) for p in sorted(MAN_DIR.glob("*.1"))]

    def get_output_mapping(self) -> dict[str, str]:
        return {}


class install_data_with_manpages(install_data):
    """Install the pages build_manpages wrote, under share/man/man1."""

    def run(self) -> None:
        self.run_command("build_manpages")
        pages = [str(p.relative_to(ROOT)) for p in sorted(MAN_DIR.glob("*.1"))]
        self.data_files = [("share/man/man1", pages)]
        super().run()


class build_all(build):
    sub_commands: ClassVar = [
        *build.sub_commands,
        ("build_catalogues", None),
        ("build_manpages", None),
    ]


setup(
    cmdclass={
        "build": build_all,
        "build_catalogues": build_catalogues,
        "build_manpages": build_manpages,
        "install_data": install_data_with_manpages,
    },
    # Filled by install_data_with_manpages once the pages are written; not
    # empty, so that the install runs it.
    data_files=[("share/man/man1", [])],
)
