"""Outside referees for CAdES outputs: openssl cms -verify and openssl ts -verify.

The time-stamp tokens are taken out of the signature with asn1crypto (not
signkit's reader), and what an archive-time-stamp-v3 covers is computed here
from EN 319 122-1 5.5.3 with asn1crypto, so that ``openssl ts -verify
-data`` checks the TSA's signature and imprint against an independent
reading of the standard.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from asn1crypto import cms, core, pem

from support.infra import pki_certificate

ATS_V3 = "0.4.0.1733.2.4"
ATS_HASH_INDEX_V3 = "0.4.0.19122.1.5"
SIGNATURE_TIME_STAMP = "signature_time_stamp_token"


def pem_files(tmp: Path) -> tuple[Path, Path]:
    """(root CA, intermediate CA) of the test PKI as PEM files."""
    root, interm = tmp / "root.pem", tmp / "interm.pem"
    root.write_bytes(pem.armor("CERTIFICATE", pki_certificate("root-ca")))
    interm.write_bytes(pem.armor("CERTIFICATE", pki_certificate("interm-ca")))
    return root, interm


def load(path: Path) -> cms.ContentInfo:
    data = path.read_bytes()
    if pem.detect(data):
        _kind, _headers, data = pem.unarmor(data)
    return cms.ContentInfo.load(data)


def openssl_cms_verify(
    signature: Path, root: Path, *, content: Path | None = None, pem_form: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """openssl cms -verify; for an attached signature the extracted content is on stdout."""
    cmd = [
        "openssl", "cms", "-verify", "-binary", "-purpose", "any",
        "-inform", "PEM" if pem_form else "DER", "-in", str(signature), "-CAfile", str(root),
    ]  # fmt: skip
    if content is not None:
        cmd += ["-content", str(content), "-out", "/dev/null"]
    return subprocess.run(cmd, capture_output=True, check=False)


def openssl_ts_verify(
    token_der: bytes, data: bytes, root: Path, interm: Path, tmp: Path
) -> subprocess.CompletedProcess[str]:
    """openssl ts -verify of a token over ``data``."""
    token, covered = tmp / "token.der", tmp / "covered.bin"
    token.write_bytes(token_der)
    covered.write_bytes(data)
    cmd = [
        "openssl", "ts", "-verify", "-token_in", "-in", str(token), "-data", str(covered),
        "-CAfile", str(root), "-untrusted", str(interm),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def unsigned(signer: cms.SignerInfo, kind: str) -> list[cms.ContentInfo]:
    found = []
    for attr in signer["unsigned_attrs"] or []:
        if attr["type"].native == kind or attr["type"].dotted == kind:
            found += [cms.ContentInfo.load(v.dump()) for v in attr["values"]]
    return found


def ats_covered(info: cms.ContentInfo, content: bytes, token: cms.ContentInfo) -> bytes:
    """The bytes an archive-time-stamp-v3 covers, by EN 319 122-1 5.5.3."""
    signed = info["content"]
    signer = signed["signer_infos"][0]
    tsa_signer = token["content"]["signer_infos"][0]
    index = next(
        a["values"][0]
        for a in tsa_signer["unsigned_attrs"]
        if a["type"].dotted == ATS_HASH_INDEX_V3
    )
    fields = [
        signer["version"],
        signer["sid"],
        signer["digest_algorithm"],
        signer["signed_attrs"],
        signer["signature_algorithm"],
        signer["signature"],
    ]
    return (
        signed["encap_content_info"]["content_type"].dump()
        + hashlib.sha256(content).digest()
        + b"".join(f.dump() for f in fields)
        + index.dump()
    )


def check_timestamps(signature: Path, content: bytes, level: str, tmp: Path) -> list[str]:
    """openssl ts -verify of every time-stamp the level calls for: the
    signature time-stamp over the signature value, each archive time-stamp
    over what it covers. Returns the problems (empty: all verified)."""
    root, interm = pem_files(tmp)
    info = load(signature)
    signer = info["content"]["signer_infos"][0]
    problems = []
    sig_tokens = unsigned(signer, SIGNATURE_TIME_STAMP)
    archive = unsigned(signer, ATS_V3)
    if level == "B-B" and (sig_tokens or archive):
        problems.append("a B-B signature carries time-stamps")
    if level != "B-B" and len(sig_tokens) != 1:
        problems.append(f"{len(sig_tokens)} signature time-stamps")
    for token in sig_tokens:
        proc = openssl_ts_verify(token.dump(), signer["signature"].native, root, interm, tmp)
        if "Verification: OK" not in proc.stdout:
            problems.append(f"signature time-stamp: {proc.stdout} {proc.stderr}")
    if (level == "B-LTA") != bool(archive):
        problems.append(f"{len(archive)} archive time-stamps at {level}")
    for token in archive:
        proc = openssl_ts_verify(
            core_dump(token), ats_covered(info, content, token), root, interm, tmp
        )
        if "Verification: OK" not in proc.stdout:
            problems.append(f"archive time-stamp: {proc.stdout} {proc.stderr}")
    return problems


def core_dump(value: core.Asn1Value) -> bytes:
    return bytes(value.dump())


def validation_data(signature: Path) -> tuple[int, int]:
    """(certificates, revocation entries) the SignedData carries."""
    signed = load(signature)["content"]
    certs = signed["certificates"]
    crls = signed["crls"]
    return (len(certs) if certs else 0, len(crls) if crls else 0)


def self_signed(common_name: str = "self-check") -> tuple[bytes, object]:
    """A self-signed RSA-2048 certificate (DER), valid for a day, and its key."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER), key
