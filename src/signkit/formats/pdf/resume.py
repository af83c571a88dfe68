"""Resume: does an existing output carry this signer's intact signature?"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from signkit.formats.pdf.finish import verify_raw_signature


def signed_by(path: Path, signer_sha256: str, field: str | None = None) -> bool:
    """Resume check: the signature in ``field`` (default: the last one) of ``path``
    is intact (its byte ranges hash to the signed digest and its value verifies
    with the certificate) and made with this certificate.

    Per field, so that a second signature by the same certificate in another
    field (a clerk's number stamp, then the seal) is not taken as done."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        with path.open("rb") as fh:
            reader = PdfFileReader(fh, strict=False)
            sigs = reader.embedded_regular_signatures
            if field is not None:
                sigs = [s for s in sigs if s.field_name == field]
            if not sigs:
                return False
            sig = sigs[-1]
            cert_der = sig.signer_cert.dump()
            if hashlib.sha256(cert_der).hexdigest() != signer_sha256:
                return False
            signer_info = sig.signer_info
            expected = None
            for attr in signer_info["signed_attrs"]:
                if attr["type"].native == "message_digest":
                    expected = attr["values"][0].native
            if expected is None or sig.compute_digest() != expected:
                return False
            return _signer_info_verifies(signer_info, cert_der)
    except Exception:
        return False


def _signer_info_verifies(signer_info: Any, cert_der: bytes) -> bool:
    """The SignerInfo's signature value over its signed attributes verifies."""
    from cryptography.exceptions import InvalidSignature

    # Signed as a SET OF (RFC 5652 5.4), stored with the [0] IMPLICIT tag.
    signed = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    algo = signer_info["signature_algorithm"]
    name = algo.signature_algo
    scheme = {"rsassa_pkcs1v15": "pkcs1v15", "rsassa_pss": "pss", "ecdsa": "ecdsa"}.get(name)
    if scheme is None:
        return False
    digest = signer_info["digest_algorithm"]["algorithm"].native
    value = signer_info["signature"].native
    try:
        verify_raw_signature(cert_der, signed, value, scheme, digest)
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True
