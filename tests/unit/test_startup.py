"""`signkit --help` and `--version` stay light: no PDF/XML stack at start-up,
and no command imports what only Typer's own value conversion needs."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pyhanko", "signxml", "lxml", "pkcs11", "cryptography", "asn1crypto")
# Typer converts option values with pydantic, which signkit's commands do not
# use (signkit.cli.framework); the help is plain, without rich.
FRAMEWORK_EXTRAS = ("pydantic", "pydantic_core", "rich", "click")

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


def _script(script: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    """``script`` (which runs signkit with ``args`` and reports on its last
    stderr line) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )


def _printed(code: str) -> str:
    """What ``python -c CODE`` prints (it must succeed)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _run(args: list[str]) -> tuple[set[str], str]:
    """The top-level modules imported by `signkit ARGS`, and what it printed on stderr."""
    *printed, modules = _script(SCRIPT, args).stderr.strip().splitlines()
    return set(json.loads(modules)), "\n".join(printed)


def _modules_after(args: list[str]) -> set[str]:
    return _run(args)[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["token", "--help"],
        ["verify", "--help"],
        ["cert", "--help"],
        ["sign", "pdf", "--help"],
        ["sign", "xml", "--help"],
    ],
)
def test_no_heavy_imports(args: list[str]) -> None:
    modules = _modules_after(args)
    assert not modules & set(HEAVY + FRAMEWORK_EXTRAS), modules & set(HEAVY + FRAMEWORK_EXTRAS)


def test_reading_options_needs_no_pydantic() -> None:
    """Regression (Typer 0.29): every option given or defaulted was converted
    through pydantic, whose import and validators cost a signing run more
    start-up time than the rest of the CLI."""
    log = "/nonexistent/audit.jsonl"
    modules, printed = _run(["audit", "show", log, "--outcome", "signed", "--since", "2026-01-01"])
    assert log in printed  # the options were read, the command ran
    assert not modules & {"pydantic", "pydantic_core"}


def test_the_root_help_imports_no_command_module() -> None:
    modules = _modules_after(["--help"])
    assert "signkit" in modules
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from signkit.cli import run; run(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('signkit.cli.')), "
            "file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = proc.stderr.strip().splitlines()[-1]
    for module in ("sign", "verify", "token", "cert", "audit", "completion", "options"):
        assert f"'signkit.cli.{module}'" not in loaded, loaded


def test_lazy_command_table_matches_the_commands() -> None:
    """`signkit --help` lists commands from a table; it must say what they say."""
    import importlib

    import typer

    from signkit.cli.app import COMMANDS

    for name, (module, help_text) in COMMANDS.items():
        command = typer.main.get_command(importlib.import_module(module).app)
        assert command.name == name
        assert command.get_short_help_str(limit=200) == help_text


def test_worker_warmup_imports_the_pdf_stack() -> None:
    """Regression: an unused-import fix once emptied the warm-up, so every batch's
    first document waited for pyHanko to import."""
    code = (
        "import sys; from signkit.formats.pdf import prepare; prepare.worker_warmup(); "
        "print(all(m in sys.modules for m in prepare.WARMUP_MODULES))"
    )
    assert _printed(code) == "True"


def test_the_plain_warmup_imports_what_a_plain_document_needs_and_no_pyhanko(
    tmp_path: Path,
) -> None:
    """A batch of invisible signatures on plain documents never loads pyHanko
    (about half a second of CPU per worker): not in the warm-up, not for its
    documents, not for a file that is no PDF at all; and the warm-up leaves
    the first document nothing to import."""
    from cryptography.hazmat.primitives import serialization

    from support.cmscheck import self_signed

    cert, key = self_signed()
    (tmp_path / "cert.der").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sample = Path(__file__).resolve().parents[2] / "fixtures" / "samples" / "decision.pdf"
    code = f"""
import subprocess, sys
from signkit.formats.pdf import finish, prepare
from signkit.formats.pdf.options import PdfDocOptions
prepare.worker_warmup_plain()
warm = set(sys.modules)
config = prepare.PdfBatchConfig(signer_der=open({str(tmp_path / "cert.der")!r}, "rb").read(),
    chain_der=(), digest_algorithm="sha256", scheme="pkcs1v15", tsa=None, bytes_reserved=16384)
item = prepare.PrepareItem(index=0, input={str(sample)!r}, temp={str(tmp_path / "t.pdf")!r},
    options=PdfDocOptions(), config=config)
prepared = prepare.worker_prepare(item)
signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", {str(tmp_path / "key.pem")!r}],
    input=prepared.to_sign, capture_output=True, check=True).stdout
finish.worker_finish(prepared, signature)
open({str(tmp_path / "notes.pdf")!r}, "w").write("not a pdf")
try:
    prepare.worker_prepare(prepare.PrepareItem(index=1, input={str(tmp_path / "notes.pdf")!r},
        temp={str(tmp_path / "t2.pdf")!r}, options=PdfDocOptions(), config=config))
except Exception as exc:
    print(exc, file=sys.stderr)
packages = {{m.split(".")[0] for m in set(sys.modules) - warm}}
print(sorted(packages & {{"signkit", "cryptography", "asn1crypto", "pyhanko", "_cffi_backend"}}),
      any(m.startswith("pyhanko") for m in sys.modules))
"""
    assert _printed(code) == "[] False"


def test_the_xml_warmup_leaves_the_signer_check_no_module_to_import(tmp_path: Path) -> None:
    """Regression: the signer check, which a batch waits for before its first
    signature, imported cryptography's x509 module in the worker after the
    warm-up (about 30 ms, most of it compiling one regular expression)."""
    from support.infra import pki_certificate

    for i, label in enumerate(("signer-rsa2048", "interm-ca", "root-ca")):
        (tmp_path / f"{i}.der").write_bytes(pki_certificate(label))
    code = f"""
import sys
from signkit.formats.xml import sign
sign.worker_warmup()
from signkit.pki.anchors import TrustSpec
from signkit.pki.chain import check_signer, preload
spec = TrustSpec(anchors=(), revocation="off")
preload(spec)
warm = set(sys.modules)
chain = [open({str(tmp_path)!r} + f"/{{i}}.der", "rb").read() for i in range(3)]
check = check_signer(chain[0], chain, spec)
packages = {{m.split(".")[0] for m in set(sys.modules) - warm}}
print(check.anchored, sorted(packages & {{"signkit", "cryptography", "pyhanko_certvalidator"}}))
"""
    assert _printed(code) == "token []"


def test_the_entry_point_guesses_the_pdf_warmup_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plain path's warm-up, unless an option on the command line asks for
    pyHanko (a visible or certifying signature, a password)."""
    import signkit.cli as cli
    import signkit.workers

    given: list[tuple[str, str]] = []
    monkeypatch.setattr(signkit.workers, "prestart", lambda warm, light: given.append(warm))
    module = "signkit.formats.pdf.prepare"
    for args, function in (
        (["sign", "pdf", "in/"], "worker_warmup_plain"),
        (["sign", "pdf", "in/", "--reason", "ok", "--level", "B-LT"], "worker_warmup_plain"),
        (["sign", "pdf", "in/", "--rect", "10,10,60,20"], "worker_warmup"),
        (["sign", "pdf", "in/", "--preset=nd30-person"], "worker_warmup"),
        (["sign", "pdf", "in/", "--password-file", "p"], "worker_warmup"),
    ):
        given.clear()
        cli._prestart_workers(args)
        assert given == [(module, function)], args


def test_the_pdf_format_asks_for_pyhanko_only_when_its_options_need_it() -> None:
    from signkit.formats.pdf.options import PdfDocOptions
    from signkit.formats.pdf.plugin import PdfFormat

    module = "signkit.formats.pdf.prepare"
    assert PdfFormat().warmup == (module, "worker_warmup_plain")
    assert PdfFormat(defaults=PdfDocOptions(reason="ok")).warmup == (module, "worker_warmup_plain")
    assert PdfFormat(defaults=PdfDocOptions(rect="1,1,50,20")).warmup == (module, "worker_warmup")
    assert PdfFormat(defaults=PdfDocOptions(certify=True)).warmup == (module, "worker_warmup")
    assert PdfFormat(password="x").warmup == (module, "worker_warmup")


FREEZE_COUNT = """
import gc, sys
from signkit.cli import run
code = run(sys.argv[1:])
print(gc.get_freeze_count(), code, file=sys.stderr)
"""


def _frozen_after(args: list[str]) -> int:
    frozen, _code = _script(FREEZE_COUNT, args).stderr.strip().splitlines()[-1].split()
    return int(frozen)


def test_verify_freezes_the_stack_it_imports_before_the_workers_fork() -> None:
    """`signkit verify` imports the validation stack once, before the workers
    fork, and freezes it (as `sign` does): it is not walked by every
    collection in every worker, nor copied there. A library caller's heap is
    left alone (the CLI does it, not the job)."""
    sample = str(Path(__file__).resolve().parents[2] / "fixtures" / "samples" / "decision.pdf")
    args = ["verify", sample, "--offline", "--no-audit", "-q"]
    cli_only = _frozen_after([*args, "--dry-run"])  # the CLI's own freeze, no stack imported
    assert _frozen_after(args) > cli_only + 50_000  # pyHanko's and signxml's objects
    code = (
        "import gc; from signkit.jobs import verify_job; verify_job.preload(); "
        "print(gc.get_freeze_count())"
    )
    assert _printed(code) == "0"


REPORT_ONCE = """
import json, sys
from signkit.jobs import report
made = []
original = report.BatchReport._json
def counted(self, documents):
    made.append(1)
    return original(self, documents)
report.BatchReport._json = counted
from signkit.cli import run
code = run(sys.argv[1:])
print(json.dumps({"code": code, "made": len(made)}), file=sys.stderr)
"""


def test_the_json_report_is_made_once_for_both_outputs(tmp_path: Path) -> None:
    """--report and --json print the same text: it is built and serialised once
    (a large batch's report takes a noticeable part of the run to build)."""
    target = tmp_path / "report.json"
    sample = Path(__file__).resolve().parents[2] / "fixtures" / "samples" / "decision.pdf"
    args = ["verify", str(sample), "--offline", "--no-audit", "--json", "--report", str(target)]
    proc = _script(REPORT_ONCE, args)
    outcome = json.loads(proc.stderr.strip().splitlines()[-1])
    assert outcome["code"] == 1  # an unsigned PDF fails verification, and is reported
    assert outcome["made"] == 1
    assert proc.stdout == target.read_text(encoding="utf-8")
    assert json.loads(proc.stdout)["documents"][0]["input"] == str(sample)


def test_xml_worker_warmup_freezes_the_xml_stack() -> None:
    """As for PDF and verify: the warm-up's imports are frozen in the worker."""
    code = (
        "import gc; from signkit.formats import xml; xml.worker_warmup(); "
        "print(gc.get_freeze_count(), gc.isenabled())"
    )
    frozen, enabled = _printed(code).split()
    assert int(frozen) > 10_000
    assert enabled == "True"


def test_xml_worker_warmup_imports_what_the_signer_check_needs() -> None:
    """The signer check runs in the XML worker before the batch: its path
    validation is imported in the warm-up, while the main process starts,
    not when the main process has to wait for the check."""
    code = (
        "import sys; from signkit.formats import xml; xml.worker_warmup(); "
        "print(all(m in sys.modules for m in "
        "('lxml.etree', 'pyhanko_certvalidator', 'signkit.pki.chain')))"
    )
    assert _printed(code) == "True"


def test_the_signing_job_imports_no_event_loop() -> None:
    """The main process of a signing run never validates a chain itself (a
    worker does), so it does not import asyncio for it (about 10 ms)."""
    code = "import sys, signkit.jobs.signing; print('asyncio' in sys.modules)"
    assert _printed(code) == "False"


def test_the_main_process_of_an_xml_batch_never_imports_the_xml_stack(tmp_path: Path) -> None:
    """The main process builds each document's item, sends the stages to the
    worker, and reads each prepared Signature and finished file back: none of
    it needs lxml or the canonicaliser, which the worker uses (about 50 ms
    of imports before the first document could go to the token)."""
    from signkit.formats.xml import sign
    from support.xmldocs import signing_item

    source = tmp_path / "in.xml"
    source.write_bytes(b"<?xml version='1.0' encoding='UTF-8'?>\n<HDon><DLHDon Id='d'/></HDon>\n")
    item = signing_item(source, tmp_path / "out.xml")
    config = item.config
    answer = tmp_path / "prepared.pickle"
    answer.write_bytes(pickle.dumps(sign.worker_prepare(item)))
    code = f"""
import pickle, sys
from pathlib import Path
from signkit.formats.plugin import SignerContext
from signkit.formats.xml.plugin import XmlFormat
context = SignerContext(certificate_der={config.signer_der!r}, chain_der=(), key_type="RSA",
                        key_size=2048, digest_algorithm="sha256", scheme="pkcs1v15", tsa=None,
                        needs_tsa=False)
stages = XmlFormat().stages(context)
class Planned:
    input = Path({str(source)!r})
    output = Path({str(tmp_path / "out.xml")!r})
    options = XmlFormat().resolve({{}})
    in_place = False
sent = pickle.dumps((stages.prepare, stages.finish, stages.make_item(0, Planned(), Path("t"))))
prepared = pickle.loads(Path({str(answer)!r}).read_bytes())
print(type(prepared).__name__, sorted(m for m in sys.modules
      if m.split(".")[0] == "lxml" or m.startswith("signkit.formats.xml.")))
"""
    kind, modules = _printed(code).split(" ", 1)
    assert kind == "Prepared"
    assert modules == str(
        ["signkit.formats.xml.batch", "signkit.formats.xml.options", "signkit.formats.xml.plugin"]
    )
