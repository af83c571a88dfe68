"""RFC 3161 client: HTTP basic authentication, refusals and malformed answers."""

from __future__ import annotations

import base64
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from signkit.errors import TimestampError
from signkit.pki.timestamps import TsaSpec, request_timestamp, tsa_certificates
from support.infra import TSA_URL, PkiServices, pki_certificate

pytestmark = pytest.mark.pki

USER, PASSWORD = "van-thu", "mat-khau-tsa"


class _Gate(BaseHTTPRequestHandler):
    """A TSA front that demands basic auth, then forwards to the test TSA."""

    seen: ClassVar[list[str | None]] = []
    mode: ClassVar[str] = "forward"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        auth = self.headers.get("Authorization")
        _Gate.seen.append(auth)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if auth != expected:
            self.send_response(401)
            self.end_headers()
            return
        if _Gate.mode == "garbage":
            answer = b"this is not DER"
        else:
            req = urllib.request.Request(  # noqa: S310 - loopback
                TSA_URL, data=body, headers={"Content-Type": "application/timestamp-query"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                answer = resp.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gate(pki: PkiServices) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Gate.seen = []
    _Gate.mode = "forward"
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()


def test_basic_auth_is_sent_and_the_token_checked(gate: str) -> None:
    token = request_timestamp(TsaSpec(url=gate, username=USER, password=PASSWORD), b"signature")
    assert _Gate.seen and _Gate.seen[-1] is not None and _Gate.seen[-1].startswith("Basic ")
    signer, others = tsa_certificates(token)
    assert signer == pki_certificate("tsa")
    assert pki_certificate("interm-ca") in others


def test_wrong_credentials_are_a_clear_error(gate: str) -> None:
    with pytest.raises(TimestampError, match="TSA answered HTTP 401") as err:
        request_timestamp(TsaSpec(url=gate, username=USER, password="wrong"), b"x")
    assert "wrong" not in str(err.value)  # no secret in the message
    assert err.value.exit_code == 5


def test_malformed_answer_and_unreachable_tsa(gate: str) -> None:
    _Gate.mode = "garbage"
    with pytest.raises(TimestampError, match="malformed TSA response"):
        request_timestamp(TsaSpec(url=gate, username=USER, password=PASSWORD), b"x")
    with pytest.raises(TimestampError, match="TSA unreachable"):
        request_timestamp(TsaSpec(url="http://127.0.0.1:9/tsa", timeout=3), b"x")


def test_repr_hides_the_password() -> None:
    assert PASSWORD not in repr(TsaSpec(url="http://t", username=USER, password=PASSWORD))
