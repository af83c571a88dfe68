"""Usage errors of sign cms, extend and the report options: one line naming
what is wrong, the documented exit code, nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from support.infra import FIXTURES, TSA_URL, PkiServices
from support.runner import Runner

ZONE = ("verify", "{dir}", "--report-format", "html", "--report", "{dir}/r.html",
        "--timezone", "Mars/Olympus")  # fmt: skip


@pytest.fixture
def doc(tmp_path: Path) -> Path:
    path = tmp_path / "hop-dong.docx"
    shutil.copy(FIXTURES / "samples" / "attachment.pdf", path)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sign", "cms", "{doc}", "--in-place"), "--in-place does not apply to CMS signatures"),
        (("sign", "cms", "{doc}", "--level", "B-T"), "B-T and higher levels need --tsa URL"),
        (("extend", "{doc}.p7s"), "no such file or directory"),
        (("extend", "{dir}", "--renew-within", "soon"), "--renew-within takes a number of days"),
        (("extend", "{dir}/signed.pdf"), "extend needs a time-stamping authority"),
        (
            ("verify", "{dir}", "--report-dir", "{dir}/out"),
            "--report-dir goes with --report-format",
        ),
        (("verify", "{dir}", "--report-format", "pdf"), "writes --report FILE or --report-dir"),
        (ZONE, "unknown time zone"),
    ],
)
def test_usage_errors(signkit: Runner, doc: Path, args: tuple[str, ...], message: str) -> None:
    shutil.copy(FIXTURES / "samples" / "attachment.pdf", doc.parent / "signed.pdf")
    before = sorted(p.name for p in doc.parent.iterdir())
    argv = [a.format(doc=doc, dir=doc.parent) for a in args]
    proc = signkit(*argv, "--no-audit", env={"SIGNKIT_PIN": "739148"})
    assert proc.returncode in (2, 3), (proc.returncode, proc.stderr)
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in doc.parent.iterdir()) == before  # nothing written


@pytest.mark.parametrize("name", ["random.p7s", "random.p7m"])
def test_bytes_that_are_no_cms_are_named_as_such(
    signkit: Runner, pki: PkiServices, tmp_path: Path, name: str
) -> None:
    """Regression: a .p7s/.p7m whose first bytes are not CMS was read as a PDF
    ('not a PDF (no %PDF- header)', 'malformed PDF')."""
    bad = tmp_path / name
    bad.write_bytes(bytes(range(7, 250)) * 4)
    checked = signkit("verify", str(bad), "--no-audit")
    said = checked.stdout + checked.stderr  # the verdict lines are on stdout
    assert checked.returncode == 1, said
    assert "PDF" not in said and "CMS" in said, said
    raised = signkit("extend", str(bad), "--tsa", TSA_URL, "--no-audit")
    assert raised.returncode == 1, raised.stderr
    assert "PDF" not in raised.stderr and "CMS" in raised.stderr, raised.stderr
    assert "Traceback" not in checked.stderr + raised.stderr
    assert bad.read_bytes() == bytes(range(7, 250)) * 4
