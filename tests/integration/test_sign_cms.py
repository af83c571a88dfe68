"""sign cms (CAdES B-B to B-LTA, detached and attached) on SoftHSM and the test
PKI, each output judged by openssl cms -verify and openssl ts -verify, and by
signkit verify (online and --offline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.cmscheck import (
    check_timestamps,
    openssl_cms_verify,
    pem_files,
    validation_data,
)
from support.infra import FIXTURES, TSA_URL, PkiServices, SoftHsm, pki_certificate

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

SAMPLE = FIXTURES / "samples" / "decision.pdf"
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


class Quiet:
    def document_done(self, result: Any) -> None:
        pass


def cms_job(softhsm: SoftHsm, trust: Path, inputs: tuple[str, ...], **extra: Any) -> Any:
    from signkit.formats.cms.options import CmsDocOptions
    from signkit.formats.cms.plugin import CmsFormat
    from signkit.jobs.outputs import OutputSpec
    from signkit.jobs.signing import SignJobSpec
    from signkit.pki.anchors import TrustSpec
    from signkit.pki.timestamps import TsaSpec
    from signkit.tokens.access import TokenSpec
    from signkit.tokens.model import KeySelector
    from signkit.tokens.pin import Pin, PinSourceKind, PinSpec

    defaults = extra.pop("defaults", CmsDocOptions())
    return SignJobSpec(
        format=CmsFormat(defaults=defaults),
        inputs=inputs,
        outputs=extra.pop("outputs", OutputSpec(suffix="")),
        token=TokenSpec(
            module=softhsm.module,
            selector=KeySelector(token_label="signkit-test-a", key_label="signer-rsa2048"),
            pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(softhsm.user_pin)),
        ),
        trust=TrustSpec(anchors=(trust,)),
        tsa=TsaSpec(url=TSA_URL),
        **extra,
    )


def run_sign(spec: Any, tmp_path: Path) -> Any:
    from signkit.jobs.report import BatchReport
    from signkit.jobs.signing import sign_documents
    from signkit.tokens.guard import PinGuard

    report = BatchReport(command="sign cms")
    sign_documents(
        spec,
        io=None,  # type: ignore[arg-type]
        guard=PinGuard(tmp_path / "guard"),
        warn=lambda _text: None,
        events=Quiet(),
        report=report,
    )
    return report


def verify(paths: list[Path], trust: Path, **policy: Any) -> Any:
    from signkit.jobs.verify_job import VerifyJobSpec, VerifyReport, verify_documents
    from signkit.verify.policy import VerifyPolicy

    spec = VerifyJobSpec(
        inputs=tuple(str(p) for p in paths),
        policy=VerifyPolicy(anchors=(trust.read_bytes(),), **policy),
        jobs=1,
    )
    return verify_documents(spec, events=Quiet(), report=VerifyReport(command="verify"))


@pytest.fixture
def trust(tmp_path: Path) -> Path:
    path = tmp_path / "root.der"
    path.write_bytes(pki_certificate("root-ca"))
    return path


def test_every_level_detached_and_attached_passes_the_referees(
    softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    """One batch (one login): each level, detached and attached, via manifest rows."""
    docs = tmp_path / "docs"
    docs.mkdir()
    rows = ["input,level,attached"]
    for level in LEVELS:
        for attached in ("false", "true"):
            name = f"{level}-{attached}.pdf"
            shutil.copy(SAMPLE, docs / name)
            rows.append(f"{name},{level},{attached}")
    manifest = docs / "batch.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    from signkit.jobs.outputs import OutputSpec

    spec = cms_job(
        softhsm, trust, (), manifest=manifest, outputs=OutputSpec(suffix=""),
        audit_path=tmp_path / "audit.jsonl",
    )  # fmt: skip
    report = run_sign(spec, tmp_path)
    assert report.totals()["signed"] == 8, [d.error_message for d in report.documents]
    root, _interm = pem_files(tmp_path)
    content = SAMPLE.read_bytes()
    signatures = []
    for level in LEVELS:
        detached = docs / f"{level}-false.pdf.p7s"
        attached = docs / f"{level}-true.pdf.p7m"
        signatures += [detached, attached]
        checked = openssl_cms_verify(detached, root, content=docs / f"{level}-false.pdf")
        assert checked.returncode == 0, checked.stderr
        extracted = openssl_cms_verify(attached, root)
        assert extracted.returncode == 0, extracted.stderr
        assert extracted.stdout == content  # the attached content is the document, byte for byte
        for sig in (detached, attached):
            assert check_timestamps(sig, content, level, tmp_path) == [], sig
            certs, revocation = validation_data(sig)
            if level in ("B-LT", "B-LTA"):
                assert revocation >= 2 and certs >= 4, (certs, revocation)  # OCSP + CRL, TSA chain
            else:
                assert revocation == 0 and certs == 3
    for offline in (False, True):
        verdicts = verify(signatures, trust, offline=offline)
        for doc in verdicts.documents:
            v = doc.verdict
            assert v is not None and v["indication"] == "PASSED", (doc.input, v)
            sig = v["signatures"][0]
            level = Path(doc.input).name.split("-")[0] + "-" + Path(doc.input).name.split("-")[1]
            assert sig["level"] == level, (doc.input, sig["level"])
            assert sig["signer_subject"].startswith("CN=signkit Test Signer RSA-2048")
            if level != "B-B":
                assert sig["timestamp_time"]
            if level in ("B-LT", "B-LTA"):
                assert sig["revocation"] == "good"  # from the embedded data, even offline
    assert verdicts.exit_code() == 0


def test_pem_output_and_resume(
    softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    from signkit.formats.cms.options import CmsDocOptions

    doc = tmp_path / "bảng lương.xlsx"
    shutil.copy(SAMPLE, doc)
    spec = cms_job(softhsm, trust, (str(doc),), defaults=CmsDocOptions(level="B-T", pem=True))
    assert run_sign(spec, tmp_path).totals()["signed"] == 1
    sig = tmp_path / "bảng lương.xlsx.p7s"
    assert sig.read_bytes().startswith(b"-----BEGIN CMS-----\n")
    root, _ = pem_files(tmp_path)
    checked = openssl_cms_verify(sig, root, content=doc, pem_form=True)
    assert checked.returncode == 0, checked.stderr
    # A rerun finds the signature done; a changed input is signed again.
    again = run_sign(spec, tmp_path)
    assert again.totals()["skipped"] == 1
    doc.write_bytes(doc.read_bytes() + b"\n% appended\n")
    third = run_sign(spec, tmp_path)
    assert third.totals()["signed"] == 1
    assert "input changed" in (third.documents[0].reason or "")
    assert openssl_cms_verify(sig, root, content=doc, pem_form=True).returncode == 0


def test_altered_or_missing_data_is_caught(
    softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    doc = tmp_path / "report.docx"
    shutil.copy(SAMPLE, doc)
    assert run_sign(cms_job(softhsm, trust, (str(doc),)), tmp_path).totals()["signed"] == 1
    sig = tmp_path / "report.docx.p7s"
    data = bytearray(doc.read_bytes())
    data[len(data) // 2] ^= 0x01
    doc.write_bytes(bytes(data))
    root, _ = pem_files(tmp_path)
    assert openssl_cms_verify(sig, root, content=doc).returncode != 0  # the referee agrees
    verdict = verify([sig], trust).documents[0].verdict
    assert (verdict["indication"], verdict["sub_indication"]) == ("FAILED", "HASH_FAILURE")
    doc.unlink()
    verdict = verify([sig], trust).documents[0].verdict
    assert verdict["indication"] == "INDETERMINATE"
    assert verdict["sub_indication"] == "SIGNED_DATA_NOT_FOUND"
    assert "report.docx" in verdict["signatures"][0]["detail"]


def test_a_signature_openssl_made_streaming_is_verified(
    pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    """Another signer's output: openssl cms -sign -stream writes BER with
    indefinite lengths and a chunked content, attached."""
    keys = FIXTURES / "pki" / "keys"
    signer = tmp_path / "signer.pem"
    from asn1crypto import pem

    signer.write_bytes(pem.armor("CERTIFICATE", pki_certificate("signer-rsa2048")))
    interm = tmp_path / "interm.pem"
    interm.write_bytes(pem.armor("CERTIFICATE", pki_certificate("interm-ca")))
    content = tmp_path / "data.bin"
    content.write_bytes(SAMPLE.read_bytes() * 3)
    out = tmp_path / "data.bin.p7m"
    subprocess.run(
        [
            "openssl", "cms", "-sign", "-binary", "-nodetach", "-stream", "-outform", "DER",
            "-in", str(content), "-signer", str(signer), "-inkey",
            str(keys / "signer-rsa2048.key.pem"), "-certfile", str(interm), "-md", "sha256",
            "-out", str(out),
        ],
        check=True,
    )  # fmt: skip
    assert out.read_bytes()[1] == 0x80  # indefinite length: BER, as other signers write it
    verdict = verify([out], trust).documents[0].verdict
    assert verdict["indication"] == "PASSED", verdict
    assert verdict["signatures"][0]["level"] == "B-B"
    assert verdict["signatures"][0]["coverage"] == "attached-content"
