"""What a CMS signature file holds: its signers, their certificates, the content.

Shared by resume (is this output ours and current?), verification and
extension. The content is never read into memory: it is hashed in a stream
from the attached ranges or from the detached data file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from signkit.errors import InputError, InputFormatError
from signkit.formats.cms.cades import SignerInfoParts
from signkit.formats.cms.der import (
    CHUNK,
    SignedDataParts,
    open_signature,
    read_signed_data,
    signature_buffer,
)
from signkit.formats.cms.options import SIGNATURE_EXTENSIONS
from signkit.formats.plugin import OutputState


@dataclass
class CmsFile:
    """A parsed signature file, open for streaming its attached content."""

    path: str
    parts: SignedDataParts
    fh: IO[bytes]
    pem: bool

    def content_digests(self, algorithms: set[str], data: Path | bytes | None) -> dict[str, bytes]:
        """Digests of the signed content: attached, else the detached ``data``
        (a file, or bytes already in memory)."""
        hashes = {a: hashlib.new(a) for a in algorithms}
        if self.parts.content is not None:
            for offset, length in self.parts.content:
                self.fh.seek(offset)
                remaining = length
                while remaining:
                    chunk = self.fh.read(min(CHUNK, remaining))
                    if not chunk:
                        raise InputFormatError("truncated content", subject=self.path)
                    for h in hashes.values():
                        h.update(chunk)
                    remaining -= len(chunk)
        else:
            if data is None:
                raise InputError("a detached signature needs its data file", subject=self.path)
            if isinstance(data, bytes):
                for h in hashes.values():
                    h.update(data)
                return {a: h.digest() for a, h in hashes.items()}
            from signkit.fsio import open_regular

            try:
                with os.fdopen(open_regular(data), "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        for h in hashes.values():
                            h.update(chunk)
            except OSError as exc:
                raise InputError(
                    f"cannot read ({exc.strerror or exc})", subject=str(data)
                ) from None
        return {a: h.digest() for a, h in hashes.items()}


@contextmanager
def open_cms(path: str | Path) -> Iterator[CmsFile]:
    """Open and parse a .p7s/.p7m (DER, BER or PEM)."""
    try:
        fh, size, pem = open_signature(str(path))
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", subject=str(path)) from None
    with fh:
        yield CmsFile(str(path), read_signed_data(fh, size, str(path)), fh, pem)


def cms_in_memory(data: bytes, name: str) -> CmsFile:
    """A signature held in memory (an attachment), parsed as ``open_cms`` does."""
    fh, size, pem = signature_buffer(data, name)
    return CmsFile(name, read_signed_data(fh, size, name), fh, pem)


@dataclass(frozen=True)
class SignerView:
    """One SignerInfo, parsed, with the certificate it names."""

    raw: SignerInfoParts
    info: Any
    """asn1crypto's SignerInfo."""
    certificate: bytes | None
    """The signer's certificate (DER), when the SignedData carries it."""

    @property
    def digest_algorithm(self) -> str:
        return str(self.info["digest_algorithm"]["algorithm"].native)

    @property
    def message_digest(self) -> bytes | None:
        attrs = self.info["signed_attrs"]
        if not attrs:
            return None
        for attr in attrs:
            if attr["type"].native == "message_digest":
                return bytes(attr["values"][0].native)
        return None

    def signature_verifies(self) -> bool:
        """The signature value over the signed attributes verifies with the
        certificate (no chain, no time: the resume check)."""
        from cryptography.exceptions import InvalidSignature

        from signkit.formats.pdf.finish import verify_raw_signature

        signed = self.raw.signed_attrs
        if self.certificate is None or signed is None:
            return False
        algo = self.info["signature_algorithm"]
        try:
            name = algo.signature_algo
        except ValueError:
            return False
        scheme = {"rsassa_pkcs1v15": "pkcs1v15", "rsassa_pss": "pss", "ecdsa": "ecdsa"}.get(name)
        if scheme is None:
            return False
        try:
            verify_raw_signature(
                self.certificate,
                b"\x31" + signed[1:],
                self.info["signature"].native,
                scheme,
                self.digest_algorithm,
            )
        except (InvalidSignature, KeyError, ValueError):
            return False
        return True


# What asn1crypto raises on DER it cannot read: it parses lazily, so a broken
# field surfaces wherever it is first touched unless everything is read at once.
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, UnboundLocalError)


def signers(parts: SignedDataParts, source: str = "") -> list[SignerView]:
    """Every signer of a SignedData, with its certificate when present. The
    fields signkit reads are read here first, so that nothing later meets a
    broken one: an unreadable SignerInfo makes the file malformed
    (InputFormatError); an unreadable certificate is as good as absent.
    (Not everything is read: attributes signkit does not use may be of kinds
    the parser does not know, in signatures that are valid.)"""
    from asn1crypto import cms, x509

    certs = []
    for der in parts.certificates:
        if der[0] == 0x30:
            try:
                cert = x509.Certificate.load(der)
                _touch_certificate(cert)
            except _UNREADABLE:
                continue
            certs.append((der, cert))
    out = []
    for raw in parts.signer_infos:
        try:
            info = cms.SignerInfo.load(raw)
            _touch_signer_info(info)
        except _UNREADABLE as exc:
            reason = str(exc).splitlines()[0][:120]
            raise InputFormatError(f"malformed SignerInfo ({reason})", subject=source) from None
        sid = info["sid"]
        found = None
        for der, cert in certs:
            if sid.name == "issuer_and_serial_number":
                chosen = sid.chosen
                if (
                    cert.serial_number == chosen["serial_number"].native
                    and cert.issuer == chosen["issuer"]
                ):
                    found = der
                    break
            elif cert.key_identifier == sid.chosen.native:
                found = der
                break
        out.append(SignerView(SignerInfoParts.parse(raw), info, found))
    return out


def _touch_certificate(cert: Any) -> None:
    """Read what signkit uses of a certificate (asn1crypto parses on first use)."""
    _ = cert.serial_number, cert.issuer.native, cert.subject.native, cert.key_identifier
    _ = cert.public_key.algorithm, cert.public_key.bit_size
    _ = cert["tbs_certificate"]["validity"].native


def _touch_signer_info(info: Any) -> None:
    """Read what signkit uses of a SignerInfo: its identifier, algorithms,
    value, and the signed attributes' types, signing time and message digest."""
    _ = info["sid"].native, info["digest_algorithm"].native, info["signature"].native
    _ = info["signature_algorithm"].native
    for attr in info["signed_attrs"] or []:
        if attr["type"].native in ("signing_time", "message_digest", "content_type"):
            _ = attr["values"].native


def detached_data(signature: Path) -> Path | None:
    """The data file a detached signature belongs to, by the rule every
    signer follows: ``a.docx.p7s`` signs ``a.docx`` next to it."""
    if signature.suffix.lower() in SIGNATURE_EXTENSIONS and signature.stem:
        return signature.with_name(signature.stem)
    return None


def output_state(output: Path, source: Path, signer_sha256: str) -> OutputState:
    """Resume: DONE when ``output`` holds this certificate's intact signature
    over ``source`` as it is now, STALE when over an earlier ``source``."""
    try:
        with open_cms(output) as found:
            for view in signers(found.parts):
                if view.certificate is None:
                    continue
                if hashlib.sha256(view.certificate).hexdigest() != signer_sha256:
                    continue
                if not view.signature_verifies():
                    continue
                algorithm = view.digest_algorithm
                digest = found.content_digests({algorithm}, source)[algorithm]
                if found.parts.content is not None:
                    with open(source, "rb") as fh:
                        current = _digest_file(fh, algorithm)
                    same = current == view.message_digest == digest
                else:
                    same = digest == view.message_digest
                return OutputState.DONE if same else OutputState.STALE
    except (InputError, ValueError, KeyError, OSError):
        return OutputState.FOREIGN
    return OutputState.FOREIGN


def _digest_file(fh: IO[bytes], algorithm: str) -> bytes:
    h = hashlib.new(algorithm)
    while chunk := fh.read(CHUNK):
        h.update(chunk)
    return h.digest()
