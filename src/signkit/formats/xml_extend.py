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
from typing import Any

from signkit.errors import DocumentError
from signkit.formats.extend import (
    CREATE_TEMP,
    Assessment,
    ExtendPrepared,
    gather,
    rank,
    token_chain,
)
from signkit.pki.timestamps import request_timestamp

DS = "http://www.w3.org/2000/09/xmldsig#"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
XADES141 = "http://uri.etsi.org/01903/v1.4.1#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
MAX_BYTES = 64 << 20
_PLACEHOLDER = "SIGNKIT-ARCHIVE-TIMESTAMP-PLACEHOLDER"


def _parse(data: bytes, source: str) -> Any:
    from signkit.formats import xml_parse

    return xml_parse.parse(data, source)


def _signatures(tree: Any) -> list[Any]:
    """The XAdES signatures (with QualifyingProperties) of a document."""
    return [
        sig
        for sig in tree.getroot().iter(f"{{{DS}}}Signature")
        if sig.find(f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties") is not None
    ]


def _usp(signature: Any) -> Any:
    return signature.find(
        f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties/{{{XADES}}}UnsignedProperties/"
        f"{{{XADES}}}UnsignedSignatureProperties"
    )


def _tokens(signature: Any, ns: str, local: str) -> list[bytes]:
    usp = _usp(signature)
    out = []
    for el in usp.iter(f"{{{ns}}}{local}") if usp is not None else ():
        for enc in el.iter(
            f"{{{XADES}}}EncapsulatedTimeStamp", f"{{{XADES141}}}EncapsulatedTimeStamp"
        ):
            try:
                out.append(base64.b64decode("".join((enc.text or "").split()), validate=True))
            except (binascii.Error, ValueError):
                continue
    return out


def level_of(signature: Any) -> str:
    """The XAdES baseline level a signature reaches, by what it carries."""
    usp = _usp(signature)
    if usp is None or usp.find(f"{{{XADES}}}SignatureTimeStamp") is None:
        return "B-B"
    if usp.find(f"{{{XADES}}}RevocationValues") is None:
        return "B-T"
    return "B-LTA" if usp.find(f"{{{XADES141}}}ArchiveTimeStamp") is not None else "B-LT"


def assess(path: str) -> Assessment:
    """The lowest level among the XAdES signatures, and the newest time-stamp."""
    data = _read(path)
    tree = _parse(data, path)
    sigs = _signatures(tree)
    if not sigs:
        if tree.getroot().find(f".//{{{DS}}}Signature") is not None:
            raise DocumentError(
                "a plain XMLDSig signature has no XAdES properties to extend", subject=path
            )
        return Assessment(None)
    levels = [level_of(s) for s in sigs]
    tokens = _tokens(sigs[0], XADES141, "ArchiveTimeStamp") or _tokens(
        sigs[0], XADES, "SignatureTimeStamp"
    )
    return Assessment(min(levels, key=rank), tokens[-1] if tokens else None)


def _read(path: str) -> bytes:
    from signkit.fsio import open_regular

    with os.fdopen(open_regular(path), "rb") as fh:
        data = fh.read(MAX_BYTES + 1)
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
    count = len(_signatures(_parse(data, prepared.input)))
    for index in range(count):
        data = _raise_one(data, index, prepared)
    tree = _parse(data, prepared.input)
    reached = min((level_of(s) for s in _signatures(tree)), key=rank)
    fd = os.open(prepared.temp, CREATE_TEMP, 0o666)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return reached


def _raise_one(data: bytes, index: int, prepared: ExtendPrepared) -> bytes:
    cfg = prepared.config
    tsa = cfg.tsa
    assert tsa is not None  # noqa: S101 - checked when prepared
    source, target = prepared.input, prepared.level
    tree = _parse(data, source)
    sig = _signatures(tree)[index]
    current = level_of(sig)
    _check_intact(tree, sig, source)
    parts: list[str] = []
    if rank(current) < rank("B-T"):
        value = _c14n(sig.find(f"{{{DS}}}SignatureValue"))
        token = request_timestamp(tsa, value).dump()
        parts.append(
            f'<xades:SignatureTimeStamp xmlns:xades="{XADES}">'
            f'<ds:CanonicalizationMethod xmlns:ds="{DS}" Algorithm="{C14N_10}"/>'
            f"<xades:EncapsulatedTimeStamp>{_b64(token)}</xades:EncapsulatedTimeStamp>"
            "</xades:SignatureTimeStamp>"
        )
        data = _append(data, tree, sig, "".join(parts), source)
        tree = _parse(data, source)
        sig = _signatures(tree)[index]
        parts = []
    if rank(target) >= rank("B-LT") and rank(current) < rank("B-LT"):
        chains: list[tuple[bytes, Sequence[bytes]]] = []
        certs = [
            base64.b64decode("".join((c.text or "").split()))
            for c in sig.iter(f"{{{DS}}}X509Certificate")
        ]
        if certs:
            chains.append((certs[0], certs[1:]))
        for token in _tokens(sig, XADES, "SignatureTimeStamp"):
            found = token_chain(token)
            if found is not None:
                chains.append(found)
        c, o, r = gather(chains, cfg.trust, source)
        parts.append(_values(c, o, r, XADES))
    elif prepared.renew:
        archived = _tokens(sig, XADES141, "ArchiveTimeStamp")
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
    data = _append(data, tree, sig, "".join(parts), source)
    if _PLACEHOLDER.encode() in data:
        tree = _parse(data, source)
        sig = _signatures(tree)[index]
        stamp = next(
            e
            for e in sig.iter(f"{{{XADES}}}EncapsulatedTimeStamp")
            if (e.text or "").strip() == _PLACEHOLDER
        )
        covered = archive_input(tree, sig, stamp.getparent(), source)
        token = request_timestamp(tsa, covered).dump()
        data = data.replace(_PLACEHOLDER.encode(), _b64(token).encode(), 1)
    return data


def _values(
    certs: Sequence[bytes], ocsps: Sequence[bytes], crls: Sequence[bytes], ns: str, wrap: str = ""
) -> str:
    prefix = "xades141" if ns == XADES141 else "xades"
    inner = [f'<xades:CertificateValues xmlns:xades="{XADES}">']
    inner += [
        f"<xades:EncapsulatedX509Certificate>{_b64(c)}</xades:EncapsulatedX509Certificate>"
        for c in certs
    ]
    inner.append("</xades:CertificateValues>")
    inner.append(f'<xades:RevocationValues xmlns:xades="{XADES}">')
    if crls:
        inner.append("<xades:CRLValues>")
        inner += [
            f"<xades:EncapsulatedCRLValue>{_b64(c)}</xades:EncapsulatedCRLValue>" for c in crls
        ]
        inner.append("</xades:CRLValues>")
    if ocsps:
        inner.append("<xades:OCSPValues>")
        inner += [
            f"<xades:EncapsulatedOCSPValue>{_b64(o)}</xades:EncapsulatedOCSPValue>" for o in ocsps
        ]
        inner.append("</xades:OCSPValues>")
    inner.append("</xades:RevocationValues>")
    if wrap:
        return f'<{prefix}:{wrap} xmlns:{prefix}="{ns}">{"".join(inner)}</{prefix}:{wrap}>'
    return "".join(inner)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _c14n(element: Any) -> bytes:
    from signkit.formats.xml import c14n

    return c14n(element, "inclusive")


def _append(data: bytes, tree: Any, sig: Any, xml: str, source: str) -> bytes:
    """Insert ``xml`` at the end of the signature's UnsignedSignatureProperties
    (created, with UnsignedProperties, when absent)."""
    from signkit.formats import xml_parse

    usp = _usp(sig)
    if usp is not None:
        target, insert = usp, xml.encode()
    else:
        target = sig.find(f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties")
        insert = (
            f'<xades:UnsignedProperties xmlns:xades="{XADES}">'
            f"<xades:UnsignedSignatureProperties>{xml}</xades:UnsignedSignatureProperties>"
            "</xades:UnsignedProperties>"
        ).encode()
    span = xml_parse.locate(data, xml_parse.element_index(tree, target))
    if span.empty:
        raise DocumentError("unexpected empty XAdES properties element", subject=source)
    return data[: span.end] + insert + data[span.end :]


def _check_intact(tree: Any, sig: Any, source: str) -> None:
    """The signature verifies as it stands (references and value): extending
    a broken signature would only time-stamp the breakage."""
    _reference_octets(tree, sig, source)


def _reference_octets(tree: Any, sig: Any, source: str) -> list[bytes]:
    """Each reference's processed data, in SignedInfo order (signxml checks
    every digest and the signature value on the way)."""
    from cryptography import x509
    from signxml.exceptions import InvalidInput, InvalidSignature
    from signxml.verifier import SignatureConfiguration

    from signkit.verify.xml import (
        _allowed_digests,
        _allowed_signature_methods,
        _verifier_class,
    )

    cert = sig.find(f".//{{{DS}}}X509Certificate")
    if cert is None:
        raise DocumentError("the signature carries no certificate", subject=source)
    der = base64.b64decode("".join((cert.text or "").split()))
    # signxml on a parse of its own (the verifier's parser: CDATA as text), the
    # signature found again there by its position.
    from lxml import etree

    from signkit.verify.xml import parse_safely

    position = tree.getroot().xpath("//ds:Signature", namespaces={"ds": DS}).index(sig)
    root = parse_safely(etree.tostring(tree, encoding="utf-8"), source)
    verifier = _verifier_class()()
    verifier.target = position
    refs = sig.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    config = SignatureConfiguration(
        expect_references=len(refs),
        require_x509=True,
        signature_methods=_allowed_signature_methods(None),  # type: ignore[arg-type]
        digest_algorithms=_allowed_digests(None),  # type: ignore[arg-type]
    )
    try:
        results = verifier.verify(
            root,
            x509_cert=x509.load_der_x509_certificate(der),
            expect_config=config,
            validate_schema=False,
        )
    except (InvalidInput, InvalidSignature) as exc:
        raise DocumentError(
            f"the signature does not verify ({exc}); not extended", subject=source
        ) from None
    results = results if isinstance(results, list) else [results]
    return [bytes(r.signed_data) for r in results]


def archive_input(tree: Any, sig: Any, stamp: Any, source: str) -> bytes:
    """What an ArchiveTimeStamp covers (EN 319 132-1 5.5.2), inclusive C14N 1.0."""
    parts = _reference_octets(tree, sig, source)
    for name in ("SignedInfo", "SignatureValue", "KeyInfo"):
        el = sig.find(f"{{{DS}}}{name}")
        if el is not None:
            parts.append(_c14n(el))
    for prop in _usp(sig):
        if prop is stamp:
            break
        if isinstance(prop.tag, str):
            parts.append(_c14n(prop))
    holder = sig.find(f"{{{DS}}}Object/{{{XADES}}}QualifyingProperties").getparent()
    for obj in sig.iterchildren(f"{{{DS}}}Object"):
        if obj is not holder:
            parts.append(_c14n(obj))
    return b"".join(parts)
