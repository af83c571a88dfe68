"""CAdES baseline signatures (ETSI EN 319 122-1) on top of the CMS container.

B-B: content-type, message-digest, signing-time and signing-certificate-v2
signed attributes. B-T: a signature-time-stamp unsigned attribute. B-LT: the
certificates and revocation data (CRLs, and OCSP responses as RFC 5940
``id-ri-ocsp-response`` entries) in SignedData.certificates and
SignedData.crls, as the baseline profile places them. B-LTA: an
archive-time-stamp-v3 whose token carries the ats-hash-index-v3 (clause
5.5.2 and 5.5.3).

Nothing here ever re-encodes what a signature or a time-stamp covers: the
signed attributes, the signature value and every earlier unsigned attribute
travel as the bytes they were stored as.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from signkit.errors import InputFormatError
from signkit.formats.cms.container import CmsTemplate, der_set_of
from signkit.formats.cms.der import (
    OID_DATA,
    SignedDataParts,
    body_of,
    children_of,
    read_signed_data,
    tlv,
)

_VERSION_1 = bytes.fromhex("020101")
_VERSION_5 = bytes.fromhex("020105")

_HASH_OIDS = {
    "sha256": bytes.fromhex("0609608648016503040201"),
    "sha384": bytes.fromhex("0609608648016503040202"),
    "sha512": bytes.fromhex("0609608648016503040203"),
}


def _oid(dotted: str) -> bytes:
    """DER of an OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
OID_SIGNATURE_TIME_STAMP = _oid("1.2.840.113549.1.9.16.2.14")
OID_ARCHIVE_TIME_STAMP_V3 = _oid("0.4.0.1733.2.4")
OID_ATS_HASH_INDEX_V3 = _oid("0.4.0.19122.1.5")
OID_OCSP_RESPONSE = _oid("1.3.6.1.5.5.7.16.2")


def attribute(oid: bytes, *values: bytes) -> bytes:
    """An Attribute: its type and the SET of its values (in the order given)."""
    return tlv(0x30, oid + tlv(0x31, b"".join(values)))


def attribute_parts(attr: bytes) -> tuple[bytes, list[bytes]]:
    """(attrType TLV, each attrValue TLV) of one Attribute."""
    kids = children_of(attr, "attribute")
    if len(kids) != 2:
        raise InputFormatError("malformed CMS attribute")
    return kids[0], children_of(kids[1], "attribute values")


@dataclass(frozen=True)
class SignerInfoParts:
    """A SignerInfo split into what its signature covers and its unsigned attributes."""

    signed_fields: list[bytes]
    """version, sid, digestAlgorithm, signedAttrs, signatureAlgorithm, signature (raw)."""
    unsigned: list[bytes]
    """Each unsigned Attribute, in order."""

    @classmethod
    def parse(cls, raw: bytes) -> SignerInfoParts:
        kids = children_of(raw, "SignerInfo")
        unsigned: list[bytes] = []
        if kids and kids[-1][0] == 0xA1:
            unsigned = children_of(kids[-1], "unsignedAttrs")
            kids = kids[:-1]
        if len(kids) < 5:
            raise InputFormatError("malformed SignerInfo")
        return cls(kids, unsigned)

    def encode(self) -> bytes:
        body = b"".join(self.signed_fields)
        if self.unsigned:
            body += tlv(0xA1, b"".join(self.unsigned))
        return tlv(0x30, body)

    @property
    def signed_attrs(self) -> bytes | None:
        """The signedAttrs field as stored ([0] IMPLICIT)."""
        return next((f for f in self.signed_fields if f[0] == 0xA0), None)

    @property
    def signature(self) -> bytes:
        """The signature value (the OCTET STRING's content)."""
        return body_of(self.signed_fields[-1], "signature")

    def with_unsigned(self, *attrs: bytes) -> SignerInfoParts:
        return SignerInfoParts(self.signed_fields, [*self.unsigned, *attrs])


@dataclass(frozen=True)
class CadesTemplate:
    """The CMS template of a batch, with CAdES's signing-time attribute."""

    base: CmsTemplate

    def signed_attributes(self, message_digest: bytes, signing_time: datetime) -> bytes:
        """DER SET OF the signed attributes (what the token signs)."""
        from asn1crypto import cms

        md_attr = attribute(OID_MESSAGE_DIGEST, tlv(0x04, message_digest))
        time_attr = cms.CMSAttribute(
            {"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]}
        ).dump()
        return der_set_of([self.base.content_type_attr, md_attr, time_attr, self.base.ess_attr])

    def signer_info(self, signed_attrs_der: bytes, signature: bytes) -> SignerInfoParts:
        """The SignerInfo of a fresh signature, without unsigned attributes."""
        return SignerInfoParts(
            [
                tlv(0x02, b"\x01"),
                self.base.sid,
                self.base.digest_alg_id,
                b"\xa0" + signed_attrs_der[1:],
                self.base.signature_alg_id,
                tlv(0x04, signature),
            ],
            [],
        )

    def parts(self, signer_info: SignerInfoParts, *, attached: bool) -> SignedDataParts:
        """A SignedData holding the signer's certificate and chain."""
        certs = [c.dump() for c in self.base.certificates]
        return SignedDataParts(
            version=_VERSION_1,
            digest_algorithms=tlv(0x31, self.base.digest_alg_id),
            content_type=OID_DATA,
            certificates=sorted(dict.fromkeys(certs)),
            signer_infos=[signer_info.encode()],
            content=[] if attached else None,
        )


def timestamp_attribute(token_der: bytes) -> bytes:
    """The signature-time-stamp unsigned attribute."""
    return attribute(OID_SIGNATURE_TIME_STAMP, token_der)


def add_validation_data(
    parts: SignedDataParts,
    *,
    certs: tuple[bytes, ...],
    crls: tuple[bytes, ...],
    ocsps: tuple[bytes, ...],
) -> None:
    """B-LT: certificates, CRLs and OCSP responses into SignedData (each once);
    what is there stays where it is, so earlier archive time-stamps' indexes
    still find it."""
    parts.certificates += _missing(parts.certificates, certs)
    revocation = list(crls) + [tlv(0xA1, OID_OCSP_RESPONSE + o) for o in ocsps]
    parts.crls += _missing(parts.crls, tuple(revocation))
    if any(r[0] == 0xA1 for r in parts.crls):
        parts.version = _VERSION_5  # RFC 5652 5.1: an 'other' revocation choice


def _missing(present: list[bytes], wanted: tuple[bytes, ...]) -> list[bytes]:
    """``wanted`` items not in ``present``, each once, in order."""
    have = set(present)
    return [w for w in dict.fromkeys(wanted) if w not in have]


def validation_data(parts: SignedDataParts) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(certificates, CRLs, OCSP responses) a SignedData carries (DER)."""
    certs = [c for c in parts.certificates if c[0] == 0x30]
    crls = [r for r in parts.crls if r[0] == 0x30]
    ocsps = []
    for r in parts.crls:
        if r[0] == 0xA1:
            kids = children_of(r, "revocation info")
            if len(kids) == 2 and kids[0] == OID_OCSP_RESPONSE:
                ocsps.append(kids[1])
    return certs, crls, ocsps


def ats_hash_index(parts: SignedDataParts, signer: SignerInfoParts, algorithm: str) -> bytes:
    """ATSHashIndexV3 (EN 319 122-1 5.5.2) over what the SignedData holds now."""

    def h(data: bytes) -> bytes:
        return tlv(0x04, hashlib.new(algorithm, data).digest())

    unsigned = []
    for attr in signer.unsigned:
        kind, values = attribute_parts(attr)
        unsigned += [h(kind + v) for v in values]
    body = b""
    if algorithm != "sha256":  # DER leaves a DEFAULT out
        body += tlv(0x30, _HASH_OIDS[algorithm])
    body += tlv(0x30, b"".join(h(c) for c in parts.certificates))
    body += tlv(0x30, b"".join(h(r) for r in parts.crls))
    body += tlv(0x30, b"".join(unsigned))
    return tlv(0x30, body)


def ats_input(
    parts: SignedDataParts, signer: SignerInfoParts, content_digest: bytes, index: bytes
) -> bytes:
    """What an archive-time-stamp-v3 time-stamps (EN 319 122-1 5.5.3): the
    content type, the content's hash, the signer's signed fields, the index."""
    return parts.content_type + content_digest + b"".join(signer.signed_fields) + index


def archive_timestamp_attribute(token_der: bytes, index: bytes) -> bytes:
    """archive-time-stamp-v3: the token, its ats-hash-index-v3 as its own
    unsigned attribute (the TSA's signature does not cover it)."""
    src = io.BytesIO(token_der)
    token = read_signed_data(src, len(token_der), "time-stamp token")
    tsa = SignerInfoParts.parse(token.signer_infos[0])
    token.signer_infos[0] = tsa.with_unsigned(attribute(OID_ATS_HASH_INDEX_V3, index)).encode()
    out = io.BytesIO()
    token.write(out, src, content_sha=None)
    return attribute(OID_ARCHIVE_TIME_STAMP_V3, out.getvalue())


def imprint_algorithm(token: bytes) -> str:
    """The hash algorithm of a time-stamp token's message imprint."""
    from asn1crypto import cms

    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    return str(info["message_imprint"]["hash_algorithm"]["algorithm"].native)


@dataclass(frozen=True)
class ArchiveStamp:
    """One archive-time-stamp-v3 of a signature, as found."""

    token: bytes
    """The time-stamp token (ContentInfo) with its hash index attribute."""
    index: bytes | None
    """Its ats-hash-index-v3 value (None: missing)."""
    position: int
    """Position of the attribute among the signer's unsigned attributes."""


def archive_stamps(signer: SignerInfoParts) -> list[ArchiveStamp]:
    """The archive-time-stamp-v3 attributes of a signer, in order."""
    found = []
    for position, attr in enumerate(signer.unsigned):
        kind, values = attribute_parts(attr)
        if kind != OID_ARCHIVE_TIME_STAMP_V3 or not values:
            continue
        token = values[0]
        index = None
        inner = read_signed_data(io.BytesIO(token), len(token), "archive time-stamp")
        for tattr in SignerInfoParts.parse(inner.signer_infos[0]).unsigned:
            tkind, tvalues = attribute_parts(tattr)
            if tkind == OID_ATS_HASH_INDEX_V3 and tvalues:
                index = tvalues[0]
        found.append(ArchiveStamp(token, index, position))
    return found


def signature_timestamps(signer: SignerInfoParts) -> list[bytes]:
    """The signature-time-stamp tokens of a signer."""
    out = []
    for attr in signer.unsigned:
        kind, values = attribute_parts(attr)
        if kind == OID_SIGNATURE_TIME_STAMP:
            out += values
    return out


def check_index(parts: SignedDataParts, signer: SignerInfoParts, stamp: ArchiveStamp) -> str | None:
    """What is wrong with an archive time-stamp's index against the signature
    as it is now, if anything: everything the index lists must still be there
    (items added after the time-stamp are allowed)."""
    if stamp.index is None:
        return "the archive time-stamp has no ats-hash-index-v3"
    fields = children_of(stamp.index, "ats-hash-index-v3")
    algorithm = "sha256"
    if len(fields) == 4:
        algo_oid = children_of(fields[0], "hash algorithm")[0]
        names = {v: k for k, v in _HASH_OIDS.items()}
        if algo_oid not in names:
            return "unsupported hash algorithm in the archive time-stamp index"
        algorithm = names[algo_oid]
        fields = fields[1:]
    if len(fields) != 3:
        return "malformed ats-hash-index-v3"

    def hashes(items: list[bytes]) -> set[bytes]:
        return {hashlib.new(algorithm, i).digest() for i in items}

    listed = [{body_of(o, "hash") for o in children_of(f, "hash index")} for f in fields]
    unsigned = []
    for i, attr in enumerate(signer.unsigned):
        if i == stamp.position:
            continue
        kind, values = attribute_parts(attr)
        unsigned += [kind + v for v in values]
    for name, wanted, present in zip(
        ("certificate", "revocation entry", "unsigned attribute"),
        listed,
        (hashes(parts.certificates), hashes(parts.crls), hashes(unsigned)),
        strict=True,
    ):
        if not wanted <= present:
            return f"a {name} the archive time-stamp covers is gone"
    return None


DigestOf = Callable[[str], bytes]
"""The signed content's digest by algorithm name (streamed by the caller)."""
