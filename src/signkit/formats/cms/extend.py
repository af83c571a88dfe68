"""Raising CAdES signatures: a signature-time-stamp attribute (B-T), the
validation data in SignedData (B-LT), an archive-time-stamp-v3 (B-LTA), and
archive renewal. The signed attributes, the signature value and every
earlier unsigned attribute are carried over as the bytes they were."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from signkit.errors import DocumentError
from signkit.formats.cms import cades
from signkit.formats.cms.der import SignedDataParts
from signkit.formats.cms.inspect import SignerView, detached_data, open_cms, signers
from signkit.formats.cms.sign import add_archive_timestamp, write_signature
from signkit.formats.extend import (
    Assessment,
    ExtendConfig,
    ExtendPrepared,
    gather,
    rank,
    token_chain,
)
from signkit.pki.timestamps import request_timestamp


def level_of(view: SignerView, parts: SignedDataParts) -> str:
    """The CAdES baseline level one signer reaches, by what it carries."""
    if not cades.signature_timestamps(view.raw):
        return "B-B"
    _certs, crls, ocsps = cades.validation_data(parts)
    if not (crls or ocsps):
        return "B-T"
    return "B-LTA" if cades.archive_stamps(view.raw) else "B-LT"


def _newest_token(view: SignerView) -> bytes | None:
    stamps = cades.archive_stamps(view.raw)
    if stamps:
        return stamps[-1].token
    tokens = cades.signature_timestamps(view.raw)
    return tokens[-1] if tokens else None


def assess(path: str, _config: ExtendConfig) -> Assessment:
    """The lowest level among the signers, and the newest time-stamp."""
    with open_cms(path) as found:
        views = signers(found.parts)
        levels = [level_of(v, found.parts) for v in views]
        lowest = min(levels, key=rank) if levels else None
        newest = _newest_token(views[0]) if views else None
    return Assessment(lowest, newest)


def extend(prepared: ExtendPrepared) -> str:
    """Write the raised signature to the temp file; the level reached."""
    cfg = prepared.config
    tsa = cfg.tsa
    assert tsa is not None  # noqa: S101 - checked when prepared
    target = prepared.level
    source = prepared.input
    with open_cms(source) as found:
        parts = found.parts
        data = None if parts.content is not None else detached_data(Path(source))
        if data is not None and not data.is_file():
            raise DocumentError(f"the signed data {data.name} is not next to it", subject=source)
        views = signers(parts)
        algorithms = {tsa.digest_algorithm} | {v.digest_algorithm for v in views}
        digests = found.content_digests(algorithms, data)
        for i, view in enumerate(views):
            if view.message_digest != digests[view.digest_algorithm]:
                raise DocumentError(
                    f"signer {i + 1}: the signed content no longer matches; not extended",
                    subject=source,
                )
            if not view.signature_verifies():
                raise DocumentError(
                    f"signer {i + 1}: the signature value does not verify; not extended",
                    subject=source,
                )
            _raise_signer(parts, i, view, target, prepared.renew, digests, prepared)
        write_signature(parts, prepared.temp, source=found.fh, content_sha=None, pem=found.pem)
        reached = min((level_of(v, parts) for v in signers(parts)), key=rank)
    if os.path.getsize(prepared.temp) == 0:
        raise DocumentError("nothing was written", subject=prepared.temp)
    return reached


def _raise_signer(
    parts: SignedDataParts,
    index: int,
    view: SignerView,
    target: str,
    renew: bool,
    digests: dict[str, bytes],
    prepared: ExtendPrepared,
) -> None:
    cfg = prepared.config
    tsa = cfg.tsa
    assert tsa is not None  # noqa: S101 - checked when prepared
    current = level_of(view, parts)
    signer = view.raw
    if rank(current) < rank("B-T"):
        token = request_timestamp(tsa, signer.signature).dump()
        signer = signer.with_unsigned(cades.timestamp_attribute(token))
        parts.signer_infos[index] = signer.encode()
    if rank(target) >= rank("B-LT") and (rank(current) < rank("B-LT") or renew):
        chains: list[tuple[bytes, Sequence[bytes]]] = []
        if rank(current) < rank("B-LT") and view.certificate is not None:
            chains.append((view.certificate, parts.certificates))
        tokens = cades.signature_timestamps(signer) if rank(current) < rank("B-LT") else []
        stamps = cades.archive_stamps(signer)
        if renew and stamps:
            tokens = [stamps[-1].token]
        for token in tokens:
            found = token_chain(token)
            if found is not None:
                chains.append(found)
        certs, ocsps, crls = gather(chains, cfg.trust, prepared.input)
        cades.add_validation_data(parts, certs=certs, crls=crls, ocsps=ocsps)
    if target == "B-LTA" and (rank(current) < rank("B-LTA") or renew):
        add_archive_timestamp(parts, index, digests[tsa.digest_algorithm], tsa)
