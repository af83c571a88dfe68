"""The worker stages of a CAdES signature.

Prepare: stream the input once (its SHA-256 for the audit log and resume,
the message digest for the signature), build the signed attributes. Finish:
the token's value, the time-stamp (B-T), the validation data (B-LT), the
archive time-stamp (B-LTA), then the signature file, written through a temp
file; an attached content is copied in a stream and must still hash to what
was signed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from signkit.errors import DocumentError, InputFormatError, OutputError, UsageError
from signkit.formats.cms.cades import (
    CadesTemplate,
    SignerInfoParts,
    add_validation_data,
    archive_timestamp_attribute,
    ats_hash_index,
    ats_input,
    timestamp_attribute,
)
from signkit.formats.cms.container import CmsTemplate
from signkit.formats.cms.der import CHUNK, SignedDataParts, pem_lines
from signkit.formats.cms.options import LONG_TERM, CmsDocOptions
from signkit.formats.finished import Finished
from signkit.formats.plugin import BatchSigner
from signkit.fsio import open_regular
from signkit.pki.timestamps import TsaSpec, request_timestamp

# A new temp file only: never an existing file, never through a symlink.
CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, kw_only=True)
class CmsBatchConfig(BatchSigner):
    """What every worker needs, the same for the whole batch (picklable, no secrets)."""


@dataclass(frozen=True)
class PrepareItem:
    """One document handed to a worker."""

    index: int
    input: str
    temp: str
    options: CmsDocOptions
    config: CmsBatchConfig


@dataclass(frozen=True)
class Prepared:
    """A document whose signed attributes are ready for the token."""

    config: CmsBatchConfig
    index: int
    input: str
    temp: str
    to_sign: bytes
    sha256_before: str
    size_before: int
    signing_time: str
    options: CmsDocOptions
    digests: dict[str, bytes] = field(default_factory=dict)
    """The content's digest by algorithm (the signature's, the archive time-stamp's)."""

    @property
    def level(self) -> str:
        return self.options.level


_TEMPLATES: dict[CmsBatchConfig, CadesTemplate] = {}


def template_for(config: CmsBatchConfig) -> CadesTemplate:
    """The batch's template (built once per worker)."""
    template = _TEMPLATES.get(config)
    if template is None:
        _TEMPLATES.clear()
        template = _TEMPLATES[config] = CadesTemplate(
            CmsTemplate.create(
                signer_der=config.signer_der,
                chain_der=config.chain_der,
                digest_algorithm=config.digest_algorithm,
                scheme=config.scheme,
            )
        )
    return template


def worker_warmup() -> None:
    """Import the ASN.1 stack ahead of the first document."""
    import asn1crypto.cms  # noqa: F401


def hash_stream(fh: IO[bytes], algorithms: set[str]) -> tuple[dict[str, bytes], int]:
    """Digests of a whole file by algorithm, in one pass; and its size."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    size = 0
    while chunk := fh.read(CHUNK):
        size += len(chunk)
        for h in hashes.values():
            h.update(chunk)
    return {name: h.digest() for name, h in hashes.items()}, size


def worker_prepare(item: PrepareItem) -> Prepared:
    """Stage 1 (worker): digests of the content, the signed attributes."""
    cfg = item.config
    algorithms = {"sha256", cfg.digest_algorithm}
    if cfg.tsa is not None:
        algorithms.add(cfg.tsa.digest_algorithm)
    try:
        with os.fdopen(open_regular(item.input), "rb") as fh:
            digests, size = hash_stream(fh, algorithms)
    except OSError as exc:
        raise InputFormatError(f"cannot read ({exc.strerror or exc})", subject=item.input) from None
    now = datetime.now(UTC).replace(microsecond=0)
    return Prepared(
        config=cfg,
        index=item.index,
        input=item.input,
        temp=item.temp,
        to_sign=template_for(cfg).signed_attributes(digests[cfg.digest_algorithm], now),
        sha256_before=digests["sha256"].hex(),
        size_before=size,
        signing_time=now.isoformat(),
        options=item.options,
        digests=digests,
    )


def add_archive_timestamp(
    parts: SignedDataParts, signer_index: int, content_digest: bytes, tsa: TsaSpec
) -> None:
    """B-LTA: an archive-time-stamp-v3 over the signature as it is now."""
    signer = SignerInfoParts.parse(parts.signer_infos[signer_index])
    index = ats_hash_index(parts, signer, tsa.digest_algorithm)
    token = request_timestamp(tsa, ats_input(parts, signer, content_digest, index))
    stamped = signer.with_unsigned(archive_timestamp_attribute(token.dump(), index))
    parts.signer_infos[signer_index] = stamped.encode()


def worker_finish(prepared: Prepared, signature: bytes) -> Finished:
    """Stage 3 (worker): time-stamps, validation data, the file, fsync, check."""
    try:
        return _finish(prepared, signature)
    except OSError as exc:
        raise OutputError(
            f"cannot write the signature ({exc.strerror or exc})", subject=prepared.temp
        ) from None


def _finish(prepared: Prepared, signature: bytes) -> Finished:
    from cryptography.exceptions import InvalidSignature

    from signkit.formats.pdf.finish import verify_raw_signature

    cfg = prepared.config
    level = prepared.level
    try:
        verify_raw_signature(
            cfg.signer_der, prepared.to_sign, signature, cfg.scheme, cfg.digest_algorithm
        )
    except InvalidSignature:
        raise DocumentError(
            "the token's signature does not verify with the signer certificate",
            subject=prepared.input,
        ) from None
    template = template_for(cfg)
    signer = template.signer_info(prepared.to_sign, signature)
    if level != "B-B":
        if cfg.tsa is None:
            raise UsageError(f"{level} needs a time-stamping authority (--tsa URL)")
        token = request_timestamp(cfg.tsa, signature)
        signer = signer.with_unsigned(timestamp_attribute(token.dump()))
    attached = prepared.options.attached
    parts = template.parts(signer, attached=attached)
    if attached:
        parts.content = [(0, prepared.size_before)]
    if level in LONG_TERM:
        add_validation_data(parts, certs=cfg.ltv_certs, crls=cfg.ltv_crls, ocsps=cfg.ltv_ocsps)
    if level == "B-LTA":
        assert cfg.tsa is not None  # noqa: S101 - checked above
        add_archive_timestamp(parts, 0, prepared.digests[cfg.tsa.digest_algorithm], cfg.tsa)
    write_signature(
        parts,
        prepared.temp,
        source=prepared.input if attached else None,
        content_sha=prepared.sha256_before,
        pem=prepared.options.pem,
    )
    after, size_after = file_sha256(prepared.temp)
    return Finished(
        index=prepared.index,
        temp=prepared.temp,
        sha256_after=after,
        signing_time=prepared.signing_time,
        level=level,
        size_after=size_after,
    )


def write_signature(
    parts: SignedDataParts,
    temp: str,
    *,
    source: str | IO[bytes] | None,
    content_sha: str | None,
    pem: bool,
) -> None:
    """Write the SignedData into a new temp file (DER, or PEM), fsynced. An
    attached content comes from ``source`` (a path or an open file)."""
    import tempfile

    fd = os.open(temp, CREATE_TEMP, 0o666)
    with os.fdopen(fd, "w+b") as out:
        opened = None
        try:
            fh: IO[bytes] | None
            if isinstance(source, str):
                opened = fh = os.fdopen(open_regular(source), "rb")
            else:
                fh = source
            if pem:
                with tempfile.TemporaryFile() as spool:
                    parts.write(spool, fh, content_sha=content_sha)
                    pem_lines(spool, out)
            else:
                parts.write(out, fh, content_sha=content_sha)
        except InputFormatError as exc:
            raise DocumentError(exc.message, subject=str(source)) from None
        finally:
            if opened is not None:
                opened.close()
        out.flush()
        os.fsync(out.fileno())


def file_sha256(path: str) -> tuple[str, int]:
    """SHA-256 and size of a file, streamed."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
