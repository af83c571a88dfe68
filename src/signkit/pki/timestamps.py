"""RFC 3161 time-stamps: the client (one HTTP POST per token) and the checks of a token.

Asking: ``request_timestamp``. Checking a token found in a document (a PAdES
signature or document time-stamp): ``check_token`` establishes what needs
no trust (the imprint, the TSA's signature over the token); the TSA's chain
is judged by ``signkit.pki.chain``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from signkit.errors import InputFault, TimestampError, TsaUnreachableError
from signkit.texts import shorten

if TYPE_CHECKING:
    from asn1crypto import cms


@dataclass(frozen=True, kw_only=True)
class TsaSpec:
    """Where and how to ask for time-stamps."""

    url: str
    """TSA URL (HTTP or HTTPS)."""
    digest_algorithm: str = "sha256"
    """Hash of the message imprint."""
    policy: str | None = None
    """Requested TSA policy OID, if any."""
    nonce: bool = True
    """Send a random nonce and check it comes back."""
    username: str | None = None
    """HTTP basic authentication user."""
    password: str | None = None
    """HTTP basic authentication password (from a file or the environment)."""
    timeout: float = 30.0
    """Seconds to wait for the TSA."""

    def __repr__(self) -> str:
        return f"TsaSpec(url={self.url!r}, policy={self.policy!r})"


def request_timestamp(spec: TsaSpec, message: bytes) -> cms.ContentInfo:
    """Time-stamp token over ``message``; checks status, imprint and nonce."""
    from asn1crypto import tsp

    imprint = hashlib.new(spec.digest_algorithm, message).digest()
    nonce = secrets.randbits(63) if spec.nonce else None
    req: dict[str, object] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": spec.digest_algorithm},
            "hashed_message": imprint,
        },
        "cert_req": True,
    }
    if nonce is not None:
        req["nonce"] = nonce
    if spec.policy:
        req["req_policy"] = spec.policy
    raw = post_timestamp_query(spec, tsp.TimeStampReq(req).dump())
    try:
        response = tsp.TimeStampResp.load(raw)
        status = response["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            text = response["status"]["status_string"].native
            raise TimestampError(f"TSA refused the request ({status}: {text})", subject=spec.url)
        token = response["time_stamp_token"]
        info = token["content"]["encap_content_info"]["content"].parsed
        got = info["message_imprint"]["hashed_message"].native
        if got != imprint:
            raise TimestampError("TSA time-stamped another message imprint", subject=spec.url)
        if nonce is not None and info["nonce"].native != nonce:
            raise TimestampError("TSA answered with another nonce (replay?)", subject=spec.url)
    except TimestampError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise TimestampError(f"malformed TSA response ({exc})", subject=spec.url) from None
    return token


def post_timestamp_query(spec: TsaSpec, body: bytes) -> bytes:
    """POST a DER TimeStampReq to the TSA; the raw DER answer."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/timestamp-query"}
    if spec.username is not None:
        cred = f"{spec.username}:{spec.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
    request = urllib.request.Request(spec.url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=spec.timeout) as resp:  # noqa: S310
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise TsaUnreachableError(
                f"TSA answered HTTP {exc.code}", subject=spec.url, hint="try again later"
            ) from None
        raise TimestampError(f"TSA answered HTTP {exc.code}", subject=spec.url) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TsaUnreachableError(
            f"TSA unreachable ({reason})", subject=spec.url, hint="try again later"
        ) from None


def tsa_certificates(token: cms.ContentInfo) -> tuple[bytes | None, tuple[bytes, ...]]:
    """(the TSA's signing certificate, the other certificates) carried in a token."""
    from asn1crypto import cms

    signed = token["content"]
    sid = signed["signer_infos"][0]["sid"].chosen
    certs = [c.chosen for c in signed["certificates"] or []]
    signer = None
    others = []
    for cert in certs:
        if (
            signer is None
            and isinstance(sid, cms.IssuerAndSerialNumber)
            and cert.serial_number == sid["serial_number"].native
            and cert.issuer == sid["issuer"]
        ):
            signer = cert.dump()
        else:
            others.append(cert.dump())
    return signer, tuple(others)


class NotATimestampToken(ValueError, InputFault):
    """What was given as a time-stamp token does not hold a TSTInfo (an
    ordinary signature where a time-stamp belongs, for one): the input's
    fault, which callers report in a verdict."""


def tst_info(signed_data: Any) -> Any | None:
    """The TSTInfo a time-stamp token's SignedData holds; None when it holds
    none (an ordinary signature where a token belongs: no content, or other
    content). Content that cannot be parsed raises the parser's error."""
    from asn1crypto import core, tsp

    content = signed_data["encap_content_info"]["content"]
    info = content.parsed if isinstance(content, core.ParsableOctetString) else None
    return info if isinstance(info, tsp.TSTInfo) else None


@dataclass(frozen=True, kw_only=True)
class TokenCheck:
    """What a time-stamp token establishes without trusting anyone."""

    time: datetime | None
    """genTime of the token."""
    imprint_ok: bool | None
    """The message imprint is the digest of what the token claims to cover."""
    signature_ok: bool | None
    """The TSA's signature over the token verifies with the certificate it names."""
    tsa_certificate: bytes | None
    """The TSA's certificate (DER), when the token carries it."""
    other_certificates: tuple[bytes, ...] = ()
    """The token's other certificates (DER)."""
    problem: str | None = None
    """Why a check could not be made, or what failed, in one phrase."""


def check_token(signed_data: Any, expected_imprint: Callable[[str], bytes]) -> TokenCheck:
    """Check a token's imprint against ``expected_imprint(hash name)`` and its signature.

    ``signed_data`` is the token's CMS SignedData. One that holds no TSTInfo
    raises NotATimestampToken; one that cannot be parsed or names an unknown
    algorithm raises whatever the parser raises. Callers turn both into a
    verdict.
    """
    from cryptography.hazmat.primitives import hashes
    from pyhanko.sign.general import extract_signer_info
    from pyhanko.sign.validation.generic_cms import (
        extract_certs_for_validation,
        validate_sig_integrity,
    )
    from pyhanko_certvalidator.util import get_pyca_cryptography_hash

    content = signed_data["encap_content_info"]["content"]
    info = tst_info(signed_data)
    if info is None:
        raise NotATimestampToken("the time-stamp token does not hold a TSTInfo")
    moment = info["gen_time"].native
    algorithm = info["message_imprint"]["hash_algorithm"]["algorithm"].native
    imprint_ok = info["message_imprint"]["hashed_message"].native == expected_imprint(algorithm)
    certs = [c.chosen.dump() for c in signed_data["certificates"] or [] if c.name == "certificate"]
    try:
        found = extract_certs_for_validation(signed_data)
    except Exception as exc:  # the TSA's certificate is not in the token
        return TokenCheck(
            time=moment,
            imprint_ok=imprint_ok,
            signature_ok=None,
            tsa_certificate=None,
            other_certificates=tuple(certs),
            problem=f"the TSA's certificate is not in the token ({shorten(str(exc), 120)})",
        )
    signer_info = extract_signer_info(signed_data)
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    md = hashes.Hash(get_pyca_cryptography_hash(digest_name))
    md.update(bytes(content))
    digest = md.finalize()
    intact, valid = validate_sig_integrity(signer_info, found.signer_cert, "tst_info", digest)
    tsa = found.signer_cert.dump()
    return TokenCheck(
        time=moment,
        imprint_ok=imprint_ok,
        signature_ok=bool(intact and valid),
        tsa_certificate=tsa,
        other_certificates=tuple(c for c in certs if c != tsa),
    )
