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
from signkit.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["token", "--help"]])
def test_no_heavy_imports(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=False
    )
    modules = set(json.loads(proc.stderr.strip().splitlines()[-1]))
    assert not modules & set(HEAVY), modules & set(HEAVY)
