"""Stage 3 (worker): the CMS with the token's signature (and a time-stamp for
B-T), the DSS (B-LT) and a document time-stamp (B-LTA), and a check that the
signature just made is intact before the engine syncs and publishes it."""

from __future__ import annotations

import functools
import hashlib
import os
from typing import IO, Any

from signkit.errors import (
    DocumentError,
    OutputError,
    UsageError,
)
from signkit.formats.finished import Finished
from signkit.formats.pdf.prepare import (
    CHUNK,
    PdfBatchConfig,
    Prepared,
    WorkerState,
    worker_state,
)
from signkit.pki.timestamps import TsaSpec, request_timestamp

DOC_TIMESTAMP_RESERVE = 24 * 1024


def worker_finish(prepared: Prepared, signature: bytes) -> Finished:
    """Stage 3 (worker): CMS (+ time-stamp), DSS, document time-stamp, check
    (the engine fsyncs the temp file before the rename)."""
    try:
        return _finish(prepared, signature)
    except OSError as exc:
        raise OutputError(
            f"cannot write the signed copy ({exc.strerror or exc})", subject=prepared.temp
        ) from None


def _finish(prepared: Prepared, signature: bytes) -> Finished:
    st = worker_state(prepared.config)
    cfg = st.config
    level = prepared.level
    token = None
    if level != "B-B":
        if cfg.tsa is None:
            raise UsageError(f"{level} needs a time-stamping authority (--tsa URL)")
        token = request_timestamp(cfg.tsa, signature)
    cms_der = st.template.signed_data(prepared.to_sign, signature, timestamp_token=token)
    with open(prepared.temp, "r+b") as out:
        if 2 * len(cms_der) > prepared.reserved_end - prepared.reserved_start - 2:
            raise DocumentError(
                f"signature container ({len(cms_der)} bytes) larger than reserved",
                subject=prepared.temp,
            )
        # The hex digits go after the '<'; the zeros reserved stay as padding.
        out.seek(prepared.reserved_start + 1)
        out.write(cms_der.hex().upper().encode("ascii"))
        if level in ("B-LT", "B-LTA"):
            from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
            from pyhanko.sign.validation.dss import DocumentSecurityStore

            # what pyHanko's filling returns: the container and its zero padding
            written = cms_der + bytes(
                (prepared.reserved_end - prepared.reserved_start - 2) // 2 - len(cms_der)
            )
            out.seek(0)
            w = IncrementalPdfFileWriter(out, strict=False)
            DocumentSecurityStore.supply_dss_in_writer(
                w,
                written,
                certs=_certs(cfg.ltv_certs),
                ocsps=_ocsps(cfg.ltv_ocsps),
                crls=_crls(cfg.ltv_crls),
            )
            w.write_in_place()
        if level == "B-LTA":
            _document_timestamp(out, st)
        out.flush()
        after = check_signature(out, prepared, signature, cfg)
        size_after = os.fstat(out.fileno()).st_size
    return Finished(
        index=prepared.index,
        temp=prepared.temp,
        sha256_after=after,
        signing_time=prepared.signing_time,
        level=level,
        warnings=prepared.warnings,
        size_after=size_after,
        synced=False,  # the engine syncs it with others before the rename
    )


def _certs(ders: tuple[bytes, ...]) -> list[Any]:
    from asn1crypto import x509

    return [x509.Certificate.load(d) for d in ders]


def _ocsps(ders: tuple[bytes, ...]) -> list[Any]:
    from asn1crypto import ocsp

    return [ocsp.OCSPResponse.load(d) for d in ders]


def _crls(ders: tuple[bytes, ...]) -> list[Any]:
    from asn1crypto import crl

    return [crl.CertificateList.load(d) for d in ders]


class _TimeStamper:
    """Adapter giving pyHanko's document time-stamper our RFC 3161 client."""

    @staticmethod
    def build(spec: TsaSpec) -> Any:
        from asn1crypto import tsp
        from pyhanko.sign.timestamps.api import TimeStamper

        from signkit.pki.timestamps import post_timestamp_query

        class Stamper(TimeStamper):
            async def async_request_tsa_response(self, req: Any) -> Any:
                return tsp.TimeStampResp.load(post_timestamp_query(spec, req.dump()))

        return Stamper(include_nonce=spec.nonce)


def _document_timestamp(out: IO[bytes], st: WorkerState) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper

    cfg = st.config
    assert cfg.tsa is not None  # noqa: S101 - checked by the caller's level test
    out.seek(0)
    w = IncrementalPdfFileWriter(out, strict=False)
    stamper = PdfTimeStamper(_TimeStamper.build(cfg.tsa))
    st.loop.run_until_complete(
        stamper.async_timestamp_pdf(
            w, cfg.digest_algorithm, bytes_reserved=DOC_TIMESTAMP_RESERVE, in_place=True
        )
    )


def check_signature(
    out: IO[bytes], prepared: Prepared, signature: bytes, cfg: PdfBatchConfig
) -> str:
    """Re-read the written file: the signed byte ranges still hash to what we
    signed, and the signature value verifies with the signer's public key.
    Returns the SHA-256 of the whole file, taken in the same pass."""
    from cryptography.exceptions import InvalidSignature

    start, end, length = prepared.reserved_start, prepared.reserved_end, prepared.signed_length
    whole = hashlib.sha256()
    # With SHA-256 both hashes share the bytes before /Contents (most of a
    # large file): hashed once, the signed hash forks from it there.
    shared = cfg.digest_algorithm == "sha256"
    signed = None if shared else hashlib.new(cfg.digest_algorithm)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    out.seek(0)
    offset = 0
    while n := out.readinto(buffer):  # type: ignore[attr-defined]
        chunk = view[:n]
        stop = offset + n
        if signed is None and offset <= start < stop:
            whole.update(chunk[: start - offset])
            signed = whole.copy()
            whole.update(chunk[start - offset :])
        else:
            whole.update(chunk)
        for lo, hi in ((0, start), (end, length)):
            if shared and lo == 0:
                continue  # already in the fork
            lo, hi = max(lo, offset), min(hi, stop)
            if lo < hi and signed is not None:
                signed.update(chunk[lo - offset : hi - offset])
        offset = stop
    if offset < length or signed is None or signed.digest() != prepared.document_digest:
        raise DocumentError(
            "the written file does not hash to the signed digest", subject=prepared.temp
        )
    try:
        verify_raw_signature(
            cfg.signer_der, prepared.to_sign, signature, cfg.scheme, cfg.digest_algorithm
        )
    except InvalidSignature:
        raise DocumentError(
            "the token's signature does not verify with the signer certificate",
            subject=prepared.temp,
        ) from None
    return whole.hexdigest()


@functools.lru_cache(maxsize=8)
def _public_key(cert_der: bytes) -> Any:
    """The public key of a certificate (a batch checks thousands with one)."""
    from cryptography import x509

    return x509.load_der_x509_certificate(cert_der).public_key()


def verify_raw_signature(
    cert_der: bytes, data: bytes, signature: bytes, scheme: str, digest_algorithm: str
) -> None:
    """Verify ``signature`` over ``data``; raises cryptography's InvalidSignature."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    algo = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
        "sha3_256": hashes.SHA3_256(),
        "sha3_384": hashes.SHA3_384(),
        "sha3_512": hashes.SHA3_512(),
    }[digest_algorithm]
    key = _public_key(cert_der)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algo))
    elif isinstance(key, rsa.RSAPublicKey):
        pad = (
            padding.PSS(padding.MGF1(algo), algo.digest_size)
            if scheme == "pss"
            else padding.PKCS1v15()
        )
        key.verify(signature, data, pad, algo)
    else:
        raise DocumentError(f"unsupported key type {type(key).__name__}")
