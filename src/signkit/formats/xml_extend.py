"""Raising XAdES signatures: unsigned properties spliced into the document's
bytes (nothing else is reformatted, no signed byte changes).

B-T: a SignatureTimeStamp over the canonical SignatureValue. B-LT:
CertificateValues and RevocationValues (the signer's and the TSA's chains,
OCSP responses, CRLs). B-LTA: an xades141:ArchiveTimeStamp over what EN 319
132-1 5.5.2 lists: each reference's processed data, SignedInfo,
SignatureValue, KeyInfo, the unsigned signature properties before it and
the ds:Objects other than the one holding the properties. Renewal: the last
archive time-stamp's TSA validation data (xades141:TimeStampValidationData),
then a new ArchiveTimeStamp.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from signkit.errors import DocumentError
from signkit.formats.extend import (
    CREATE_TEMP,
    Assessment,
    ExtendConfig,
    ExtendPrepared,
    gather,
    rank,
    token_chain,
)
from signkit.formats.xml import xades
from signkit.formats.xml.parse import MAX_BYTES, XmlDocument, parse
from signkit.pki.timestamps import request_timestamp

if TYPE_CHECKING:
    from lxml.etree import _Element

    from signkit.formats.xml.core import CoreResult

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = xades.XADES
XADES141 = xades.XADES141
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
# Valid base64 (the core reads the element while the token is made), and a
# string no signature value or certificate would hold.
_PLACEHOLDER = base64.b64encode(b"signkit archive time-stamp placeholder").decode("ascii")


def _signatures(doc: XmlDocument) -> list[_Element]:
    """The XAdES signatures (with QualifyingProperties) of a document."""
    from signkit.formats.xml.core import signatures_of

    return [s for s in signatures_of(doc) if xades.qualifying_properties(s) is not None]


def _children(signature: _Element, local: str) -> list[_Element]:
    usp = xades.unsigned_signature_properties(signature)
    return [el for el in (usp if usp is not None else ()) if xades.is_xades(el, local)]


def _tokens(signature: _Element, local: str) -> list[bytes]:
    out = []
    for el in _children(signature, local):
        for enc in el:
            if not xades.is_xades(enc, "EncapsulatedTimeStamp"):
                continue
            try:
                out.append(base64.b64decode("".join((enc.text or "").split()), validate=True))
            except (binascii.Error, ValueError):
                continue
    return out


def level_of(signature: _Element) -> str:
    """The XAdES baseline level a signature reaches, by what it carries."""
    if not _children(signature, xades.SIGNATURE_TIMESTAMP):
        return "B-B"
    if not _children(signature, "RevocationValues"):
        return "B-T"
    return "B-LTA" if _children(signature, xades.ARCHIVE_TIMESTAMP) else "B-LT"


def assess(path: str, _config: ExtendConfig) -> Assessment:
    """The lowest level among the XAdES signatures, and the newest time-stamp."""
    doc = parse(_read(path), path)
    sigs = _signatures(doc)
    if not sigs:
        if doc.root.find(f".//{{{DS}}}Signature") is not None:
            raise DocumentError(
                "a plain XMLDSig signature has no XAdES properties to extend", subject=path
            )
        return Assessment(None)
    levels = [level_of(s) for s in sigs]
    tokens = _tokens(sigs[0], xades.ARCHIVE_TIMESTAMP) or _tokens(
        sigs[0], xades.SIGNATURE_TIMESTAMP
    )
    return Assessment(min(levels, key=rank), tokens[-1] if tokens else None)


def _read(path: str) -> bytes:
    from signkit.fsio import open_regular, read_within

    with os.fdopen(open_regular(path), "rb") as fh:
        data = read_within(fh, MAX_BYTES)
    if len(data) > MAX_BYTES:
        raise DocumentError("XML documents over 64 MiB are not extended", subject=path)
    return data


def extend(prepared: ExtendPrepared) -> str:
    """Write the raised document to the temp file; the level reached."""
    import hashlib

    data = _read(prepared.input)
    if hashlib.sha256(data).hexdigest() != prepared.sha256_before:
        raise DocumentError(
            "the document changed while it was being extended", subject=prepared.input
        )
    count = len(_signatures(parse(data, prepared.input)))
    for index in range(count):
        data = _raise_one(data, index, prepared)
    reached = min((level_of(s) for s in _signatures(parse(data, prepared.input))), key=rank)
    fd = os.open(prepared.temp, CREATE_TEMP, 0o666)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return reached


def _raise_one(data: bytes, index: int, prepared: ExtendPrepared) -> bytes:
    from signkit.formats.xml import c14n

    cfg = prepared.config
    tsa = cfg.tsa
    assert tsa is not None  # noqa: S101 - checked when prepared
    source, target = prepared.input, prepared.level
    doc = parse(data, source)
    sig = _signatures(doc)[index]
    current = level_of(sig)
    _check_intact(doc, sig, source)
    parts: list[str] = []
    if rank(current) < rank("B-T"):
        value = c14n.canonicalize_element(sig.find(f"{{{DS}}}SignatureValue"), c14n.INCLUSIVE)
        token = request_timestamp(tsa, value).dump()
        parts.append(
            f'<xades:SignatureTimeStamp xmlns:xades="{XADES}">'
            f'<ds:CanonicalizationMethod xmlns:ds="{DS}" Algorithm="{C14N_10}"/>'
            f"<xades:EncapsulatedTimeStamp>{_b64(token)}</xades:EncapsulatedTimeStamp>"
            "</xades:SignatureTimeStamp>"
        )
        data = _append(data, doc, sig, "".join(parts), source)
        doc = parse(data, source)
        sig = _signatures(doc)[index]
        parts = []
    if rank(target) >= rank("B-LT") and rank(current) < rank("B-LT"):
        chains: list[tuple[bytes, Sequence[bytes]]] = []
        certs = [
            base64.b64decode("".join((c.text or "").split()))
            for c in sig.iter(f"{{{DS}}}X509Certificate")
        ]
        if certs:
            chains.append((certs[0], certs[1:]))
        for token in _tokens(sig, xades.SIGNATURE_TIMESTAMP):
            found = token_chain(token)
            if found is not None:
                chains.append(found)
        c, o, r = gather(chains, cfg.trust, source)
        parts.append(_values(c, o, r, XADES))
    elif prepared.renew:
        archived = _tokens(sig, xades.ARCHIVE_TIMESTAMP)
        found = token_chain(archived[-1]) if archived else None
        if found is not None:
            c, o, r = gather([found], cfg.trust, source)
            parts.append(_values(c, o, r, XADES141, "TimeStampValidationData"))
    if target == "B-LTA" and (rank(current) < rank("B-LTA") or prepared.renew):
        parts.append(
            f'<xades141:ArchiveTimeStamp xmlns:xades141="{XADES141}">'
            f'<ds:CanonicalizationMethod xmlns:ds="{DS}" Algorithm="{C14N_10}"/>'
            f'<xades:EncapsulatedTimeStamp xmlns:xades="{XADES}">{_PLACEHOLDER}'
            "</xades:EncapsulatedTimeStamp></xades141:ArchiveTimeStamp>"
        )
    if not parts:
        return data
    if _PLACEHOLDER.encode() in data:
        raise DocumentError("the document contains signkit's placeholder text", subject=source)
    data = _append(data, doc, sig, "".join(parts), source)
    if _PLACEHOLDER.encode() in data:
        doc = parse(data, source)
        sig = _signatures(doc)[index]
        covered = archive_input(doc, sig, source)
        token = request_timestamp(tsa, covered).dump()
        data = data.replace(_PLACEHOLDER.encode(), _b64(token).encode(), 1)
    return data


def _values(
    certs: Sequence[bytes], ocsps: Sequence[bytes], crls: Sequence[bytes], ns: str, wrap: str = ""
) -> str:
    prefix = "xades141" if ns == XADES141 else "xades"
    inner = (
        f'<xades:CertificateValues xmlns:xades="{XADES}">'
        f"{xades.encapsulated('X509Certificate', certs)}</xades:CertificateValues>"
        f'<xades:RevocationValues xmlns:xades="{XADES}">'
        f"{xades.revocation_values_content(ocsps, crls)}</xades:RevocationValues>"
    )
    if wrap:
        return f'<{prefix}:{wrap} xmlns:{prefix}="{ns}">{inner}</{prefix}:{wrap}>'
    return inner


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _append(data: bytes, doc: XmlDocument, sig: _Element, xml: str, source: str) -> bytes:
    """Insert ``xml`` at the end of the signature's UnsignedSignatureProperties
    (created, with UnsignedProperties, when absent)."""
    from signkit.formats.xml.splice import element_index, locate

    usp = xades.unsigned_signature_properties(sig)
    if usp is not None:
        target, insert = usp, xml.encode()
    else:
        holder = xades.qualifying_properties(sig)
        assert holder is not None  # noqa: S101 - _signatures keeps only these
        target = holder
        insert = (
            f'<xades:UnsignedProperties xmlns:xades="{XADES}">'
            f"<xades:UnsignedSignatureProperties>{xml}</xades:UnsignedSignatureProperties>"
            "</xades:UnsignedProperties>"
        ).encode()
    span = locate(data, element_index(doc.tree, target), doc.root_offset)
    if span.empty:
        raise DocumentError("unexpected empty XAdES properties element", subject=source)
    return data[: span.end] + insert + data[span.end :]


def _check_intact(doc: XmlDocument, sig: _Element, source: str) -> None:
    """The signature verifies as it stands (value and every reference, by the
    XML core): extending a broken signature would only time-stamp the breakage."""
    from signkit.formats.xml.core import check_signature
    from signkit.formats.xml.references import uri_base

    try:
        core = check_signature(doc, sig, base=uri_base(source))
    except DocumentError as exc:
        reason = exc.message
    else:
        if core.valid:
            return
        reason = _failure(core)
    raise DocumentError(f"the signature does not verify ({reason}); not extended", subject=source)


def _failure(core: CoreResult) -> str:
    """Why core validation failed, in a few words."""
    if not core.value_ok:
        return "the signature value does not verify with any key the signature carries"
    bad = next(r for r in core.references if not r.matches)
    if bad.problem is not None:
        return bad.problem.message
    uri = bad.uri
    return f"reference {uri or '(document)'} does not match its digest"


def archive_input(doc: XmlDocument, sig: _Element, source: str) -> bytes:
    """What the last ArchiveTimeStamp covers (EN 319 132-1 5.5.2), as the XML
    core computes it for verification."""
    from signkit.formats.xml.references import Context, uri_base

    stamps = [
        s
        for s in xades.stamps(sig, Context(doc=doc, signature=sig, base=uri_base(source)))
        if s.kind == xades.ARCHIVE_TIMESTAMP
    ]
    if not stamps or stamps[-1].message is None:
        problem = stamps[-1].problem if stamps else "no ArchiveTimeStamp"
        raise DocumentError(
            f"cannot compute the archive time-stamp's input ({problem})", subject=source
        )
    return stamps[-1].message
