"""signkit extend: B-B PDF, XAdES and CAdES samples raised to B-LTA, archive
renewal inside and outside its window, resume and audit. After each step
every earlier signature and time-stamp is checked by a referee (pdfsig and
openssl ts for the PDF, xmlsec1 and openssl ts for XML, openssl cms and
openssl ts for CMS) and signkit verify --offline reports the level."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from support.cmscheck import check_timestamps, openssl_cms_verify, openssl_ts_verify, pem_files
from support.infra import FIXTURES, REPO, TSA_URL, PkiServices, SoftHsm
from support.pdfcheck import pdfsig, qpdf_ok
from support.runner import Runner
from support.xmlcheck import assert_xmlsec_ok, signxml_verify

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"


class Quiet:
    def document_done(self, result: Any) -> None:
        pass


def sign(softhsm: SoftHsm, trust: Path, fmt: Any, src: Path, out: Path, tmp: Path) -> None:
    """A B-B signature made by signkit's signing pipeline (job API)."""
    from signkit.jobs.outputs import OutputSpec
    from signkit.jobs.report import BatchReport
    from signkit.jobs.signing import SignJobSpec, sign_documents
    from signkit.pki.anchors import TrustSpec
    from signkit.tokens.access import TokenSpec
    from signkit.tokens.guard import PinGuard
    from signkit.tokens.model import KeySelector
    from signkit.tokens.pin import Pin, PinSourceKind, PinSpec

    spec = SignJobSpec(
        format=fmt,
        inputs=(str(src),),
        outputs=OutputSpec(output=out, suffix=""),
        token=TokenSpec(
            module=softhsm.module,
            selector=KeySelector(token_label="signkit-test-a", key_label="signer-rsa2048"),
            pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(softhsm.user_pin)),
        ),
        trust=TrustSpec(anchors=(trust,)),
    )
    report = BatchReport(command="sign")
    sign_documents(
        spec,
        io=None,  # type: ignore[arg-type]
        guard=PinGuard(tmp / "guard"),
        warn=lambda _t: None,
        events=Quiet(),
        report=report,
    )
    assert report.totals()["signed"] == 1, [d.error_message for d in report.documents]


@pytest.fixture
def samples(softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path) -> Path:
    """archive/: a B-B PDF, a B-B XAdES document, a detached and an attached B-B CAdES."""
    from signkit.formats.cms.options import CmsDocOptions
    from signkit.formats.cms.plugin import CmsFormat
    from signkit.formats.pdf import PdfDocOptions, PdfFormat
    from signkit.formats.xml.options import XmlDocOptions
    from signkit.formats.xml.plugin import XmlFormat

    archive = tmp_path / "archive"
    archive.mkdir()
    sample = FIXTURES / "samples" / "decision.pdf"
    sign(
        softhsm, trust, PdfFormat(defaults=PdfDocOptions(rect="110,40,75,22")), sample,
        archive / "decision.pdf", tmp_path,
    )  # fmt: skip
    sign(
        softhsm, trust, XmlFormat(defaults=XmlDocOptions(level="B-B")),
        FIXTURES / "xml" / "generic.xml", archive / "generic.xml", tmp_path,
    )  # fmt: skip
    shutil.copy(sample, archive / "budget.xlsx")
    shutil.copy(sample, archive / "scan.zip")
    sign(
        softhsm, trust, CmsFormat(), archive / "budget.xlsx", archive / "budget.xlsx.p7s", tmp_path
    )
    sign(
        softhsm, trust, CmsFormat(defaults=CmsDocOptions(attached=True)), archive / "scan.zip",
        archive / "scan.zip.p7m", tmp_path,
    )  # fmt: skip
    return archive


def extend(
    signkit: Runner, trust: Path, tmp: Path, *args: str, lang: str = "en", json: bool = True
) -> Any:
    proc = signkit(
        "--lang", lang, "extend", "-r", str(tmp / "archive"), "--tsa", TSA_URL,
        "--trust", str(trust), "--audit-log", str(tmp / "audit.jsonl"),
        *(["--json"] if json else []), *args,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def verify_offline(signkit: Runner, trust: Path, archive: Path, *args: str) -> dict[str, Any]:
    proc = signkit(
        "verify", "-r", str(archive), "--trust", str(trust), "--offline", "--json", *args
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    return {Path(d["input"]).name: d["verdict"] for d in data["documents"]}


def pdf_timestamps_verify(path: Path, tmp: Path) -> int:
    """openssl ts -verify of every document time-stamp over its byte ranges."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    root, interm = pem_files(tmp)
    data = path.read_bytes()
    with path.open("rb") as fh:
        reader = PdfFileReader(fh, strict=False)
        stamps = list(reader.embedded_timestamp_signatures)
        for ts in stamps:
            a, b, c, d = (int(v) for v in ts.byte_range)
            covered = data[a : a + b] + data[c : c + d]
            proc = openssl_ts_verify(ts.pkcs7_content, covered, root, interm, tmp)
            assert "Verification: OK" in proc.stdout, proc.stdout + proc.stderr
    return len(stamps)


def _c14n(element: Any) -> bytes:
    standalone = etree.fromstring(etree.tostring(element))
    return bytes(etree.tostring(standalone, method="c14n", exclusive=False, with_comments=False))


def xml_timestamps_verify(path: Path, tmp: Path) -> int:
    """openssl ts -verify of the SignatureTimeStamp and of each ArchiveTimeStamp,
    what they cover computed here from EN 319 132-1 5.5.2 (signxml for the
    references' processed data, lxml for the canonical forms)."""
    root_pem, interm = pem_files(tmp)
    tree = etree.parse(str(path))
    sig = tree.find(f".//{{{DS}}}Signature")
    refs = signxml_verify(path, "signer-rsa2048", xades=True, references=2)
    usp = sig.find(f".//{{{XADES}}}UnsignedSignatureProperties")
    stamped = 0
    for prop in usp:
        token_el = prop.find(f"{{{XADES}}}EncapsulatedTimeStamp")
        if token_el is None:
            continue
        token = base64.b64decode(token_el.text)
        if prop.tag == f"{{{XADES}}}SignatureTimeStamp":
            covered = _c14n(sig.find(f"{{{DS}}}SignatureValue"))
        else:
            assert prop.tag == f"{{{XADES141}}}ArchiveTimeStamp"
            pieces = [bytes(r.signed_data) for r in refs]
            pieces += [_c14n(sig.find(f"{{{DS}}}{n}")) for n in ("SignedInfo", "SignatureValue")]
            key_info = sig.find(f"{{{DS}}}KeyInfo")
            pieces += [_c14n(key_info)] if key_info is not None else []
            for before in usp:
                if before is prop:
                    break
                pieces.append(_c14n(before))
            holder = sig.find(f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties").getparent()
            pieces += [_c14n(o) for o in sig.findall(f"{{{DS}}}Object") if o is not holder]
            covered = b"".join(pieces)
        proc = openssl_ts_verify(token, covered, root_pem, interm, tmp)
        assert "Verification: OK" in proc.stdout, (prop.tag, proc.stdout + proc.stderr)
        stamped += 1
    return stamped


def check_referees(archive: Path, tmp: Path, before: dict[str, bytes]) -> dict[str, int]:
    """Every earlier signature and time-stamp still verifies; counts of time-stamps."""
    pdf = archive / "decision.pdf"
    first = pdfsig(pdf).split("Signature #2")[0]
    assert "ETSI.CAdES.detached" in first and "Signature is Valid" in first, first
    assert qpdf_ok(pdf)
    assert pdf.read_bytes().startswith(before["decision.pdf"])  # incremental only
    assert_xmlsec_ok(archive / "generic.xml", tmp)
    root, _ = pem_files(tmp)
    content = (archive / "budget.xlsx").read_bytes()
    detached = openssl_cms_verify(
        archive / "budget.xlsx.p7s", root, content=archive / "budget.xlsx"
    )
    assert detached.returncode == 0, detached.stderr
    extracted = openssl_cms_verify(archive / "scan.zip.p7m", root)
    assert extracted.returncode == 0 and extracted.stdout == content
    for sig in ("budget.xlsx.p7s", "scan.zip.p7m"):
        assert check_timestamps(archive / sig, content, "B-LTA", tmp) == []
    return {
        "pdf": pdf_timestamps_verify(pdf, tmp),
        "xml": xml_timestamps_verify(archive / "generic.xml", tmp),
    }


def test_extend_to_b_lta_then_renew(
    samples: Path, signkit: Runner, trust: Path, tmp_path: Path
) -> None:
    before = {p.name: p.read_bytes() for p in samples.iterdir()}
    first = verify_offline(signkit, trust, samples)
    assert {name: v["signatures"][0]["level"] for name, v in first.items()} == {
        "decision.pdf": "B-B",
        "generic.xml": "B-B",
        "budget.xlsx.p7s": "B-B",
        "scan.zip.p7m": "B-B",
    }
    proc = extend(signkit, trust, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["totals"]["signed"] == 4, report
    counts = check_referees(samples, tmp_path, before)
    assert counts == {"pdf": 2, "xml": 2}  # B-T and B-LTA document time-stamps; STS and ATS
    after = verify_offline(signkit, trust, samples)
    for name, verdict in after.items():
        assert verdict["indication"] == "PASSED", (name, verdict)
        assert verdict["signatures"][0]["level"] == "B-LTA", (name, verdict["signatures"][0])
        assert verdict["signatures"][0]["revocation"] == "good", name
    # A year on, offline: the embedded OCSP answers are stale, the archive
    # time-stamps still carry the level (regression: CAdES fell to B-LT,
    # INDETERMINATE, once the answers had expired).
    from datetime import UTC, datetime, timedelta

    later = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    for name, verdict in verify_offline(signkit, trust, samples, "--at", later).items():
        assert verdict["indication"] == "PASSED", (name, verdict["signatures"][0])
        assert verdict["signatures"][0]["level"] == "B-LTA", (name, verdict["signatures"][0])
    # A rerun finds nothing to do (resume).
    again = extend(signkit, trust, tmp_path, json=False)
    assert again.returncode == 0
    assert "already B-LTA" in again.stdout and "0 extended, 4 skipped" in again.stderr
    # Renewal: outside the window every document is skipped and listed (on
    # stdout: what the run did is data; the counts on stderr) ...
    quiet = extend(signkit, trust, tmp_path, "--renew-within", "180d", json=False)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.count("outside the 180-day renewal window") == 4, quiet.stdout
    vi = extend(signkit, trust, tmp_path, "--renew-within", "180d", lang="vi", json=False)
    assert vi.stdout.count("ngoài khoảng gia hạn 180 ngày") == 4, vi.stdout
    assert "0 đã nâng cấp, 4 bỏ qua" in vi.stderr, vi.stderr
    # ... inside it (the TSA certificate ends within 7300 days) each gets a new archive time-stamp.
    renewed = extend(signkit, trust, tmp_path, "--renew-within", "7300d")
    assert renewed.returncode == 0, renewed.stdout + renewed.stderr
    assert "4 extended" in renewed.stderr
    counts = check_referees(samples, tmp_path, before)
    assert counts == {"pdf": 3, "xml": 3}
    final = verify_offline(signkit, trust, samples)
    for name, verdict in final.items():
        assert verdict["indication"] == "PASSED", name
        assert verdict["signatures"][0]["level"] == "B-LTA"
    for name in ("generic.xml", "budget.xlsx.p7s", "scan.zip.p7m"):
        assert len(final[name]["signatures"][0]["archive_timestamp_times"]) == 2, name
    # Every change has its audit record, and the log is intact.
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    starts = [r for r in records if r.get("type") == "run-start"]
    assert starts and all(r["command"] == "extend" for r in starts)
    assert sum(1 for r in records if r.get("type") == "published") >= 2
    checked = signkit("audit", "verify", str(tmp_path / "audit.jsonl"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_extend_refuses_a_broken_signature_and_changes_nothing(
    samples: Path, signkit: Runner, trust: Path, tmp_path: Path
) -> None:
    data = samples / "budget.xlsx"
    data.write_bytes(data.read_bytes() + b"tampered")
    sig_before = (samples / "budget.xlsx.p7s").read_bytes()
    proc = signkit(
        "extend", str(samples / "budget.xlsx.p7s"), "--tsa", TSA_URL, "--trust", str(trust),
        "--no-audit",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no longer matches; not extended" in proc.stdout + proc.stderr
    assert (samples / "budget.xlsx.p7s").read_bytes() == sig_before
    assert not list(samples.glob(".signkit-tmp-*"))


def test_killed_extend_run_leaves_whole_documents_and_a_rerun_finishes(
    softhsm: SoftHsm, pki: PkiServices, signkit: Runner, trust: Path, tmp_path: Path
) -> None:
    """SIGKILL in the middle of a batch: each document is either its old self
    or fully extended (never half-written), and running again completes it."""
    import signal
    import subprocess
    import sys
    import time

    from signkit.formats.cms.plugin import CmsFormat
    from signkit.jobs.outputs import OutputSpec
    from signkit.jobs.report import BatchReport
    from signkit.jobs.signing import SignJobSpec, sign_documents
    from signkit.pki.anchors import TrustSpec
    from signkit.tokens.access import TokenSpec
    from signkit.tokens.guard import PinGuard
    from signkit.tokens.model import KeySelector
    from signkit.tokens.pin import Pin, PinSourceKind, PinSpec

    archive = tmp_path / "archive"
    archive.mkdir()
    sample = (FIXTURES / "samples" / "attachment.pdf").read_bytes()
    for i in range(24):
        (archive / f"ho-so-{i:02d}.pdf").write_bytes(sample + f"% {i}\n".encode())
    spec = SignJobSpec(
        format=CmsFormat(),
        inputs=(str(archive),),
        outputs=OutputSpec(suffix=""),
        token=TokenSpec(
            module=softhsm.module,
            selector=KeySelector(token_label="signkit-test-a", key_label="signer-rsa2048"),
            pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(softhsm.user_pin)),
        ),
        trust=TrustSpec(anchors=(trust,), revocation="off"),
    )
    signed = BatchReport(command="sign cms")
    sign_documents(
        spec, io=None, guard=PinGuard(tmp_path / "g"), warn=lambda _t: None,  # type: ignore[arg-type]
        events=Quiet(), report=signed,
    )  # fmt: skip
    assert signed.totals()["signed"] == 24
    originals = {p: p.read_bytes() for p in archive.glob("*.p7s")}
    log = tmp_path / "audit.jsonl"
    args = [
        "extend", "-r", str(archive), "--tsa", TSA_URL, "--trust", str(trust),
        "--audit-log", str(log), "--jobs", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "signkit", *args], env=signkit.env(), cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the first documents are published
        if log.exists() and b'"published"' in log.read_bytes():
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("the run never published a document")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    from signkit.formats.cms.extend import level_of
    from signkit.formats.cms.inspect import open_cms, signers

    levels = {}
    for path, before in originals.items():
        with open_cms(path) as found:  # every file parses: whole, old or new
            levels[path] = level_of(signers(found.parts)[0], found.parts)
        if levels[path] == "B-B":
            assert path.read_bytes() == before
    done = sum(1 for level in levels.values() if level == "B-LTA")
    assert 0 < done < 24, levels
    assert set(levels.values()) <= {"B-B", "B-LTA"}
    rerun = signkit(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{24 - done} extended, {done} skipped" in rerun.stderr
    assert not list(archive.glob(".signkit-tmp-*"))
    verdicts = verify_offline(signkit, trust, archive)
    assert all(v["signatures"][0]["level"] == "B-LTA" for v in verdicts.values())
    checked = signkit("audit", "verify", str(log))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("algorithm", "days", "due"),
    [("sha256", 180, False), ("sha256", 7300, True), ("sha1", 180, True)],
)
def test_renewal_is_due_near_the_tsa_certificate_end_or_for_a_weak_imprint(
    pki: PkiServices, algorithm: str, days: int, due: bool
) -> None:
    """A real token of the test TSA (its certificate ends in 2045): renewal is due
    when that end falls within the window, or when the token's imprint is SHA-1
    whatever the window."""
    import asyncio
    import hashlib
    from datetime import timedelta

    from pyhanko.sign.timestamps import HTTPTimeStamper

    from signkit.formats.extend import renewal_due

    stamper = HTTPTimeStamper(TSA_URL)
    token = asyncio.run(stamper.async_timestamp(hashlib.new(algorithm, b"x").digest(), algorithm))
    found, why = renewal_due(token.dump(), timedelta(days=days))
    assert found is due, why
    assert (why == "") is due


def test_a_document_another_run_holds_is_named_with_the_reason(
    signkit: Runner, trust: Path, samples: Path, tmp_path: Path
) -> None:
    """Regression: the document was only counted ("1 not attempted") on stderr."""
    held = samples / "decision.pdf"
    before = held.read_bytes()
    with held.open("rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        proc = signkit(
            "extend", "-r", str(samples), "--level", "B-T", "--tsa", TSA_URL,
            "--trust", str(trust), "--audit-log", str(tmp_path / "audit.jsonl"),
            env={"COLUMNS": "400"},
        )  # fmt: skip
    assert proc.returncode == 75, proc.stderr
    reason = f"locked by another signkit run (pid {os.getpid()})"
    rows = [line.split() for line in proc.stderr.splitlines() if str(held) in line]
    assert rows == [["not-attempted", str(held), *reason.split()]], proc.stderr
    assert "3 extended, 0 skipped, 0 failed, 1 not attempted (of 4)" in proc.stderr
    assert held.read_bytes() == before
