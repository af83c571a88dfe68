"""Raising existing signatures without re-signing, any format: the worker
stages of `signkit extend` on the batch engine (no token, no sign stage).

B-B -> B-T adds a time-stamp over each signature, B-T -> B-LT the
certificates and revocation data that let it be checked later, B-LT ->
B-LTA an archive time-stamp over all of it. Archive renewal adds a new
archive time-stamp (with the validation data of the last one's TSA) to a
document whose newest time-stamp's TSA certificate ends within the window
or whose algorithms are weak. Each format module never touches the bytes a
signature or a time-stamp covers: PDFs get incremental updates, XAdES
unsigned properties are spliced in, a CMS gains unsigned attributes and
SignedData entries.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from signkit.errors import CertificateError, DocumentError, InputError, RevocationError
from signkit.formats.finished import Finished
from signkit.formats.plugin import Unchanged
from signkit.fsio import open_regular
from signkit.pki.anchors import TrustSpec
from signkit.pki.timestamps import TsaSpec

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
CHUNK = 1 << 20
# A new temp file only: never an existing file, never through a symlink.
CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def rank(level: str | None) -> int:
    """Order of levels (-1: no baseline level at all)."""
    return LEVELS.index(level) if level in LEVELS else -1


@dataclass(frozen=True, kw_only=True)
class ExtendConfig:
    """What every worker needs, the same for the whole run (picklable; the
    secrets it carries stay out of its repr)."""

    tsa: TsaSpec | None
    """Time-stamping authority for the new time-stamps."""
    trust: TrustSpec = field(default_factory=TrustSpec)
    """Anchors and revocation policy for the validation data gathered (B-LT)."""
    renew_within: timedelta | None = None
    """Archive renewal: add an archive time-stamp when the newest one's TSA
    certificate ends within this window (or its algorithms are weak)."""
    pdf_password: str | None = field(default=None, repr=False)
    """Opens the PDFs that need a password to open, and lifts the permissions
    of those whose owner password it is; the others open as they would
    without it."""


@dataclass(frozen=True, kw_only=True)
class ExtendOptions:
    """Per-document settings (a manifest may set the level per row)."""

    level: str = "B-LTA"
    """The level to raise the document's signatures to."""


@dataclass(frozen=True)
class ExtendItem:
    """One document handed to a worker."""

    index: int
    input: str
    temp: str
    level: str
    config: ExtendConfig


@dataclass(frozen=True)
class ExtendPrepared:
    """A document found to need work, and what it is now."""

    index: int
    input: str
    temp: str
    level: str
    current: str
    format: str
    config: ExtendConfig
    sha256_before: str
    size_before: int
    renew: bool
    """A new archive time-stamp on a document already at B-LTA."""
    to_sign: bytes = b""


@dataclass(frozen=True)
class Assessment:
    """What a format module found in a document."""

    level: str | None
    """The lowest level among its signatures (None: no signature)."""
    newest_timestamp: bytes | None = None
    """The newest time-stamp token (DER ContentInfo): what renewal looks at."""


def worker_warmup() -> None:
    """Import what every format's extension needs ahead of the first document."""
    import asn1crypto.cms  # noqa: F401
    import pyhanko_certvalidator  # noqa: F401


def _format(path: str) -> str:
    from pathlib import Path

    from signkit.jobs.verify_job import detect_format

    return detect_format(Path(path))


def _module(fmt: str) -> Any:
    if fmt == "pdf":
        from signkit.formats.pdf import extend as pdf_extend

        return pdf_extend
    if fmt == "cms":
        from signkit.formats.cms import extend as cms_extend

        return cms_extend
    import signkit.formats.xml_extend

    return signkit.formats.xml_extend


def file_sha256(path: str) -> tuple[str, int]:
    """SHA-256 and size of a file, streamed (regular files only)."""
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", subject=path) from None
    return h.hexdigest(), size


def worker_prepare(item: ExtendItem) -> ExtendPrepared | Unchanged:
    """Stage 1 (worker): what the document is, and whether it needs anything."""
    sha, size = file_sha256(item.input)
    fmt = _format(item.input)
    found: Assessment = _module(fmt).assess(item.input, item.config)
    if found.level is None:
        return Unchanged(item.index, "no signature to extend", sha, size)
    renew = False
    if rank(found.level) >= rank(item.level):
        window = item.config.renew_within
        if window is None or found.level != "B-LTA":
            level = found.level
            return Unchanged(item.index, f"already {level}", sha, size)
        due, why = renewal_due(found.newest_timestamp, window)
        if not due:
            return Unchanged(item.index, why, sha, size)
        renew = True
    if item.config.tsa is None:
        raise DocumentError("extending needs a time-stamping authority (--tsa URL)")
    return ExtendPrepared(
        index=item.index,
        input=item.input,
        temp=item.temp,
        level=item.level,
        current=found.level,
        format=fmt,
        config=item.config,
        sha256_before=sha,
        size_before=size,
        renew=renew,
    )


def worker_finish(prepared: ExtendPrepared, _signature: bytes) -> Finished:
    """Stage 3 (worker): the extended copy in the temp file, fsynced."""
    try:
        level = _module(prepared.format).extend(prepared)
    except OSError as exc:
        raise DocumentError(
            f"cannot write the extended copy ({exc.strerror or exc})", subject=prepared.temp
        ) from None
    after, size = file_sha256(prepared.temp)
    return Finished(
        index=prepared.index,
        temp=prepared.temp,
        sha256_after=after,
        signing_time=datetime.now(UTC).replace(microsecond=0).isoformat(),
        level=level,
        size_after=size,
    )


def renewal_due(token: bytes | None, window: timedelta) -> tuple[bool, str]:
    """(due, why not) for archive renewal: the newest time-stamp's TSA
    certificate ends within ``window``, or the token uses a weak algorithm."""
    from asn1crypto import cms

    if token is None:
        return True, ""
    signed = cms.ContentInfo.load(token)["content"]
    info = signed["encap_content_info"]["content"].parsed
    algo = info["message_imprint"]["hash_algorithm"]["algorithm"].native
    signer = signed["signer_infos"][0]
    weak = algo in ("sha1", "md5") or signer["digest_algorithm"]["algorithm"].native in (
        "sha1",
        "md5",
    )
    from signkit.pki.timestamps import tsa_certificates

    cert_der, _others = tsa_certificates(cms.ContentInfo.load(token))
    if cert_der is None:
        return True, ""
    from asn1crypto import x509

    cert = x509.Certificate.load(cert_der)
    ends = cert["tbs_certificate"]["validity"]["not_after"].native
    key = cert.public_key
    if key.algorithm == "rsa" and key.bit_size < 2048:
        weak = True
    if weak:
        return True, ""
    left = ends - datetime.now(UTC)
    if left <= window:
        return True, ""
    until, days = f"{ends:%Y-%m-%d}", window.days
    return (
        False,
        f"archive time-stamp good until {until} (its TSA certificate), "
        f"outside the {days}-day renewal window",
    )


def gather(
    chains: Sequence[tuple[bytes, Sequence[bytes]]], trust: TrustSpec, source: str
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]:
    """(certificates, OCSP responses, CRLs) for each (certificate, other
    certificates): its validated chain and revocation data, each item once."""
    from signkit.pki.chain import check_signer

    certs: list[bytes] = []
    ocsps: list[bytes] = []
    crls: list[bytes] = []
    for cert, others in chains:
        try:
            check = check_signer(cert, list(others), trust, require_signing_usage=False)
        except (CertificateError, RevocationError) as exc:
            raise DocumentError(f"cannot gather validation data: {exc}", subject=source) from None
        certs += check.chain
        ocsps += check.ocsp_responses
        crls += check.crls
    return tuple(dict.fromkeys(certs)), tuple(dict.fromkeys(ocsps)), tuple(dict.fromkeys(crls))


def token_chain(token: bytes) -> tuple[bytes, tuple[bytes, ...]] | None:
    """(TSA certificate, other certificates) a time-stamp token carries."""
    from asn1crypto import cms

    from signkit.pki.timestamps import tsa_certificates

    cert, others = tsa_certificates(cms.ContentInfo.load(token))
    return (cert, others) if cert is not None else None


def copy_checked(source: str, temp: str, sha256: str) -> Any:
    """Copy ``source`` into a new temp file (returned open, r+b), checking it
    is still the document that was assessed."""
    h = hashlib.sha256()
    out = os.fdopen(os.open(temp, CREATE_TEMP, 0o666), "w+b")
    try:
        with os.fdopen(open_regular(source), "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
    except BaseException:
        out.close()
        raise
    if h.hexdigest() != sha256:
        out.close()
        raise DocumentError("the document changed while it was being extended", subject=source)
    return out
