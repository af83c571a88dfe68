"""`signkit --help` and `--version` stay light: no PDF/XML stack at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pyhanko", "signxml", "lxml", "pkcs11", "cryptography", "asn1crypto")

SCRIPT = """
import json, sys
sys.argv = ["signkit"] + sys.argv[1:]
from signkit.cli import run
try:
    run()
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["token", "--help"], ["verify", "--help"], ["cert", "--help"]],
)
def test_no_heavy_imports(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=False
    )
    modules = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_lazy_command_table_matches_the_commands() -> None:
    """`signkit --help` lists commands from a table; it must say what they say."""
    import importlib

    from signkit.cli.app import COMMANDS

    for name, (module, attribute, help_text) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert command.get_short_help_str(limit=200) == help_text


def test_worker_warmup_imports_the_pdf_stack() -> None:
    """Regression: an unused-import fix once emptied the warm-up, so every batch's
    first document waited for pyHanko to import."""
    code = (
        "import sys; from signkit.formats.pdf import prepare; prepare.worker_warmup(); "
        "print(all(m in sys.modules for m in prepare.WARMUP_MODULES))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "True"
