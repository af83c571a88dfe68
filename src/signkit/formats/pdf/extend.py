"""Raising PAdES signatures by incremental updates only (earlier revisions,
and so every earlier signature and time-stamp, keep their bytes).

B-T: a document time-stamp after the signatures (EN 319 142-1 allows it in
place of a signature-time-stamp attribute). B-LT: a DSS with the signers'
and the TSAs' chains and revocation data. B-LTA: a document time-stamp
after the DSS. Renewal: the validation data of the newest document
time-stamp's TSA, then a new document time-stamp.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import IO, Any

from signkit.errors import DocumentError
from signkit.faults import input_faults
from signkit.formats.extend import (
    Assessment,
    ExtendConfig,
    ExtendPrepared,
    copy_checked,
    gather,
    rank,
    token_chain,
)
from signkit.formats.pdf.encryption import OPEN_HINT, unlock_to_read, update_access

DOC_TIMESTAMP_RESERVE = 24 * 1024


def _reader(fh: IO[bytes], source: str, password: str | None) -> Any:
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(fh, strict=False)
    if reader.encrypted:
        unlock_to_read(reader, source, password, hint=OPEN_HINT)
    return reader


def _writer(out: IO[bytes], source: str, password: str | None) -> Any:
    """An incremental update of ``out``; for an encrypted PDF, one its
    permissions allow to the password that opens it (``password``, else the
    empty user password of an owner-password-only PDF), encrypted as the
    document is."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(out, strict=False)
    if writer.prev.encrypted and not update_access(writer, source, password, hint=OPEN_HINT).add:
        raise DocumentError(
            "the PDF's permissions do not allow adding time-stamps or validation data; "
            "its owner password would",
            subject=source,
            hint="give the owner password with --password-file or SIGNKIT_PDF_PASSWORD",
        )
    return writer


def _has_dss(reader: Any, revision: int | None = None) -> bool:
    root = reader.root if revision is None else reader.get_historical_root(revision)
    dss = root.get("/DSS")
    if dss is None:
        return False
    dss = dss.get_object()
    return bool(dss.get("/OCSPs") or dss.get("/CRLs"))


def _signature_tokens(sig: Any) -> list[bytes]:
    from asn1crypto import cms
    from pyhanko.sign.validation import generic_cms

    return [
        cms.ContentInfo({"content_type": "signed_data", "content": tst}).dump()
        for tst in generic_cms.extract_tst_data_iter(sig.signer_info, signed=False)
    ]


def _doc_token(ts: Any) -> bytes:
    from asn1crypto import cms

    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": ts.signed_data}).dump())


def level_of(reader: Any) -> tuple[str | None, bytes | None]:
    """(the lowest PAdES level of the signatures, the newest time-stamp token)."""
    sigs = list(reader.embedded_regular_signatures)
    if not sigs:
        return None, None
    stamps = list(reader.embedded_timestamp_signatures)
    last = max(s.signed_revision for s in sigs)
    after = [t for t in stamps if t.signed_revision > last]
    timed = all(_signature_tokens(s) for s in sigs) or bool(after)
    newest = _doc_token(stamps[-1]) if stamps else None
    if newest is None:
        tokens = [t for s in sigs for t in _signature_tokens(s)]
        newest = tokens[-1] if tokens else None
    if not timed:
        return "B-B", newest
    if not _has_dss(reader):
        return "B-T", newest
    archived = any(_has_dss(reader, t.signed_revision) for t in after)
    return ("B-LTA" if archived else "B-LT"), newest


def assess(path: str, config: ExtendConfig) -> Assessment:
    """The lowest level among the signatures, and the newest time-stamp."""
    # pyHanko reads lazily: a damaged object may be met anywhere in the walk.
    with input_faults(path, "malformed PDF"), open(path, "rb") as fh:
        level, newest = level_of(_reader(fh, path, config.pdf_password))
    return Assessment(level, newest)


def extend(prepared: ExtendPrepared) -> str:
    """Write the raised PDF to the temp file; the level reached."""
    cfg = prepared.config
    assert cfg.tsa is not None  # noqa: S101 - checked when prepared
    target, source = prepared.level, prepared.input
    password = cfg.pdf_password
    with (
        input_faults(source, "cannot extend this PDF"),
        copy_checked(source, prepared.temp, prepared.sha256_before) as out,
    ):
        current, _newest = level_of(_reader(out, source, password))
        if rank(current) < rank("B-T"):
            _timestamp_signatures(out, cfg.tsa, source, password)
            out.seek(0)
            if rank(level_of(_reader(out, source, password))[0]) < rank("B-T"):
                _document_timestamp(out, cfg.tsa, source, password)
        if rank(target) >= rank("B-LT") and (rank(current) < rank("B-LT") or prepared.renew):
            out.seek(0)
            reader = _reader(out, source, password)
            chains = _chains(reader, renew=prepared.renew and current == "B-LTA")
            certs, ocsps, crls = gather(chains, cfg.trust, source)
            out.seek(0)
            writer = _writer(out, source, password)
            from pyhanko.sign.validation.dss import DocumentSecurityStore

            DocumentSecurityStore.supply_dss_in_writer(
                writer, None, certs=_certs(certs), ocsps=_ocsps(ocsps), crls=_crls(crls)
            )
            writer.write_in_place()
        if target == "B-LTA" and (rank(current) < rank("B-LTA") or prepared.renew):
            _document_timestamp(out, cfg.tsa, source, password)
        out.flush()
        import os

        os.fsync(out.fileno())
        out.seek(0)
        reached, _ = level_of(_reader(out, source, password))
        if rank(reached) < rank(target):
            raise DocumentError(f"reached only {reached}, not {target}", subject=source)
        _check_earlier_intact(out, prepared.size_before, source, password)
    return reached or target


def _timestamp_signatures(out: IO[bytes], tsa: Any, source: str, password: str | None) -> None:
    """B-T the way every validator reads it: a signature-time-stamp attribute
    in the CMS of each signature that has none, when nothing signed after it
    covers its /Contents (which no signature's own digest covers either) and
    the reserved space holds it. The others get a document time-stamp."""
    import binascii

    from signkit.formats.cms import cades
    from signkit.formats.cms.der import read_signed_data
    from signkit.pki.timestamps import request_timestamp

    out.seek(0)
    reader = _reader(out, source, password)
    everything = list(reader.embedded_signatures)
    edits = []
    for sig in reader.embedded_regular_signatures:
        if _signature_tokens(sig):
            continue
        if any(other.signed_revision > sig.signed_revision for other in everything):
            continue  # a later signature or time-stamp covers this /Contents
        _, start, end, _ = (int(v) for v in sig.byte_range)
        raw = sig.pkcs7_content
        parts = read_signed_data(io.BytesIO(raw), len(raw), source)
        if len(parts.signer_infos) != 1:
            continue
        signer = cades.SignerInfoParts.parse(parts.signer_infos[0])
        token = request_timestamp(tsa, signer.signature).dump()
        parts.signer_infos[0] = signer.with_unsigned(cades.timestamp_attribute(token)).encode()
        buffer = io.BytesIO()
        parts.write(buffer, None, content_sha=None)
        encoded = binascii.hexlify(buffer.getvalue())
        room = end - start - 2
        if len(encoded) > room:
            continue  # the signer reserved too little: a document time-stamp instead
        edits.append((start + 1, encoded + b"0" * (room - len(encoded))))
    for offset, data in edits:
        out.seek(offset)
        out.write(data)
    out.flush()


def _chains(reader: Any, *, renew: bool) -> list[tuple[bytes, Sequence[bytes]]]:
    """The certificates whose validation data a B-LT DSS carries: every
    signer's and every TSA's (for renewal: the newest document time-stamp's)."""
    out: list[tuple[bytes, Sequence[bytes]]] = []
    stamps = list(reader.embedded_timestamp_signatures)
    if renew:
        found = token_chain(_doc_token(stamps[-1])) if stamps else None
        return [found] if found is not None else []
    for sig in reader.embedded_regular_signatures:
        others = [c.dump() for c in sig.other_embedded_certs]
        out.append((sig.signer_cert.dump(), others))
        for token in _signature_tokens(sig):
            found = token_chain(token)
            if found is not None:
                out.append(found)
    for ts in stamps:
        found = token_chain(_doc_token(ts))
        if found is not None:
            out.append(found)
    return out


def _document_timestamp(out: IO[bytes], tsa: Any, source: str, password: str | None) -> None:
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper

    from signkit.formats.pdf.finish import _TimeStamper

    out.seek(0)
    writer = _writer(out, source, password)
    stamper = PdfTimeStamper(_TimeStamper.build(tsa))
    asyncio.run(
        stamper.async_timestamp_pdf(
            writer, tsa.digest_algorithm, bytes_reserved=DOC_TIMESTAMP_RESERVE, in_place=True
        )
    )


def _check_earlier_intact(
    out: IO[bytes], size_before: int, source: str, password: str | None
) -> None:
    """Every signature and time-stamp of the input still hashes to what it signed."""
    out.seek(0)
    reader = _reader(out, source, password)
    for sig in reader.embedded_signatures:
        _, _, start2, len2 = (int(v) for v in sig.byte_range)
        if start2 + len2 > size_before:
            continue  # made by this extension
        expected = None
        if sig.sig_object_type == "/DocTimeStamp":
            info = sig.signed_data["encap_content_info"]["content"].parsed
            expected = info["message_imprint"]["hashed_message"].native
        else:
            for attr in sig.signer_info["signed_attrs"] or []:
                if attr["type"].native == "message_digest":
                    expected = attr["values"][0].native
        if expected is not None and sig.compute_digest() != expected:
            raise DocumentError(
                f"{sig.field_name}: an earlier signature no longer hashes to what it signed",
                subject=source,
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
