"""CRLs served as PEM (as Vietnam's National Root CA serves them) are accepted.

A throwaway CA made here (cryptography), a certificate whose CRL distribution
point is a loopback HTTP server the test owns, and that server answering with
a PEM-armoured CRL: `signkit cert check` must read it, both when the
certificate is good and when the CRL lists it.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from support.runner import Runner

pytestmark = pytest.mark.softhsm  # the runner's fixture; no PKI services needed


class _CrlServer:
    def __init__(self) -> None:
        self.body = b""
        self.hits = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-pem-file")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ca.crl"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def crl_server() -> Iterator[_CrlServer]:
    server = _CrlServer()
    try:
        yield server
    finally:
        server.close()


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "signkit PEM-CRL test"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _pki(tmp_path: Path, crl_url: str) -> tuple[Path, Path, object, object, x509.Certificate]:
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("PEM-CRL Test Root"))
        .issuer_name(_name("PEM-CRL Test Root"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Nguyễn Thị PEM"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    root_path, leaf_path = tmp_path / "root.pem", tmp_path / "leaf.pem"
    root_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return root_path, leaf_path, ca_key, ca, leaf


def _pem_crl(ca_key, ca: x509.Certificate, revoked: list[int]) -> bytes:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=1))
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(minutes=1))
            .build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _check(signkit: Runner, leaf: Path, root: Path) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    proc = signkit(
        "cert",
        "check",
        "--file",
        str(leaf),
        "--trust",
        str(root),
        "--revocation",
        "hard",
        "--json",
        "--no-audit",
    )
    data = json.loads(proc.stdout)
    certs = data["certificates"] if isinstance(data, dict) else data
    return proc.returncode, certs[0], proc.stderr


def test_a_pem_crl_says_good(signkit: Runner, crl_server: _CrlServer, tmp_path: Path) -> None:
    root, leaf, ca_key, ca, _cert = _pki(tmp_path, crl_server.url)
    crl_server.body = _pem_crl(ca_key, ca, [])
    assert crl_server.body.startswith(b"-----BEGIN X509 CRL-----")
    code, cert, err = _check(signkit, leaf, root)
    assert code == 0, err
    assert cert["revocation"] == "good" and "CRL" in (cert["revocation_source"] or ""), cert
    assert crl_server.hits >= 1


def test_a_pem_crl_says_revoked(signkit: Runner, crl_server: _CrlServer, tmp_path: Path) -> None:
    root, leaf, ca_key, ca, cert_obj = _pki(tmp_path, crl_server.url)
    crl_server.body = _pem_crl(ca_key, ca, [cert_obj.serial_number])
    code, cert, err = _check(signkit, leaf, root)
    assert code == 5, err
    assert cert["state"] == "revoked" and cert["revocation"] == "revoked", cert
