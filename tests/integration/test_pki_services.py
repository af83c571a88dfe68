"""The live test PKI: URLs in the certificates match the services, which answer."""

from __future__ import annotations

import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from support.infra import (
    OCSP_URL,
    PKI_BASE,
    TSA_URL,
    InfraError,
    PkiServices,
    pki_certificate,
)

pytestmark = pytest.mark.pki

SIGNERS = [
    "signer-rsa2048",
    "signer-rsa3072",
    "signer-ec256",
    "signer-expired",
    "signer-notyet",
    "signer-revoked",
    "signer-nousage",
    "signer-nolabel",
    "signer-vn",
    "leader-vn",
    "clerk-vn",
]


def urls(label: str) -> tuple[list[str], list[str], list[str]]:
    cert = x509.load_der_x509_certificate(pki_certificate(label))
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ocsp = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
    ]
    issuers = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
    ]
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crls = [n.value for dp in cdp for n in (dp.full_name or [])]
    return ocsp, issuers, crls


@pytest.mark.parametrize("label", SIGNERS)
def test_certificate_urls_are_the_local_services(pki: PkiServices, label: str) -> None:
    ocsp, issuers, crls = urls(label)
    assert ocsp == [OCSP_URL]
    assert issuers and crls
    for url in issuers + crls:
        assert url.startswith(PKI_BASE)
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            assert resp.status == 200 and resp.read()
    with urllib.request.urlopen(issuers[0], timeout=10) as resp:  # noqa: S310
        assert resp.read() == pki_certificate("interm-ca")


def _pem(tmp_path: Path, label: str) -> Path:
    path = tmp_path / f"{label}.pem"
    cert = x509.load_der_x509_certificate(pki_certificate(label))
    from cryptography.hazmat.primitives.serialization import Encoding

    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


@pytest.mark.parametrize(
    ("label", "status"), [("signer-rsa2048", "good"), ("signer-revoked", "revoked")]
)
def test_ocsp_answers_as_openssl_sees_it(
    pki: PkiServices, tmp_path: Path, label: str, status: str
) -> None:
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        _pem(tmp_path, "interm-ca").read_bytes() + _pem(tmp_path, "root-ca").read_bytes()
    )
    proc = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(_pem(tmp_path, "interm-ca")),
            "-cert",
            str(_pem(tmp_path, label)),
            "-url",
            OCSP_URL,
            "-CAfile",
            str(chain),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f": {status}" in proc.stdout
    assert "Response verify OK" in proc.stderr + proc.stdout


def test_tsa_answers_and_openssl_verifies(pki: PkiServices, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("timestamp me")
    query = tmp_path / "q.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(query)],
        check=True,
        capture_output=True,
    )
    req = urllib.request.Request(  # noqa: S310 - loopback
        TSA_URL, data=query.read_bytes(), headers={"Content-Type": "application/timestamp-query"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        (tmp_path / "r.tsr").write_bytes(resp.read())
    root = _pem(tmp_path, "root-ca")
    proc = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-data",
            str(data),
            "-in",
            str(tmp_path / "r.tsr"),
            "-CAfile",
            str(root),
            "-untrusted",
            str(_pem(tmp_path, "interm-ca")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "Verification: OK" in proc.stdout, proc.stderr


def test_busy_port_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # the shared-PKI mode of a developer's shell would test another path
    monkeypatch.delenv("SIGNKIT_TEST_PKI_SHARED", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(InfraError, match=f"port {port} on 127.0.0.1 is busy"):
            PkiServices(port=port).start()
