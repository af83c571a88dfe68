"""CMS SignedData for PAdES/CAdES, built directly with asn1crypto.

The signer's certificate, chain and attribute layout are the same for a whole
batch, so the container is assembled here from pre-computed parts instead of
going through a general-purpose signing pipeline per document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import algos, cms, tsp, x509

from signkit.tokens.model import SignatureScheme

_HASH_LEN = {
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "sha3_256": 32,
    "sha3_384": 48,
    "sha3_512": 64,
}


def signature_algorithm(
    scheme: SignatureScheme, digest_algorithm: str
) -> algos.SignedDigestAlgorithm:
    """The SignerInfo signatureAlgorithm for a scheme and digest."""
    if scheme == "pss":
        return algos.SignedDigestAlgorithm(
            {
                "algorithm": "rsassa_pss",
                "parameters": algos.RSASSAPSSParams(
                    {
                        "hash_algorithm": {"algorithm": digest_algorithm},
                        "mask_gen_algorithm": {
                            "algorithm": "mgf1",
                            "parameters": {"algorithm": digest_algorithm},
                        },
                        "salt_length": _HASH_LEN[digest_algorithm],
                    }
                ),
            }
        )
    suffix = "ecdsa" if scheme == "ecdsa" else "rsa"
    return algos.SignedDigestAlgorithm({"algorithm": f"{digest_algorithm}_{suffix}"})


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tlv(tag: int, body: bytes) -> bytes:
    """One DER element."""
    return bytes([tag]) + _len(len(body)) + body


def der_set_of(elements: list[bytes]) -> bytes:
    """DER SET OF: elements sorted by their encodings (X.690 11.6)."""
    return tlv(0x31, b"".join(sorted(elements)))


_OID_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")


@dataclass(frozen=True)
class CmsTemplate:
    """Everything about the container that does not change from document to document.

    The constant parts are encoded once with asn1crypto; per document only
    the message digest, the signature value and the optional time-stamp are
    spliced in as DER bytes (asn1crypto re-encoding the whole structure per
    document cost more than everything else in a batch).
    """

    signer_cert: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    digest_algorithm: str
    scheme: SignatureScheme
    content_type_attr: bytes
    ess_attr: bytes
    sid: bytes
    digest_alg_id: bytes
    signature_alg_id: bytes
    certificates_der: bytes

    @classmethod
    def create(
        cls,
        *,
        signer_der: bytes,
        chain_der: tuple[bytes, ...],
        digest_algorithm: str,
        scheme: SignatureScheme,
    ) -> CmsTemplate:
        """Parse the certificates once and pre-encode every constant part."""
        signer = x509.Certificate.load(signer_der)
        chain = tuple(x509.Certificate.load(d) for d in chain_der)
        ess = tsp.SigningCertificateV2(
            {
                "certs": [
                    tsp.ESSCertIDv2(
                        {
                            "hash_algorithm": {"algorithm": "sha256"},
                            "cert_hash": hashlib.sha256(signer_der).digest(),
                            "issuer_serial": {
                                "issuer": [x509.GeneralName({"directory_name": signer.issuer})],
                                "serial_number": signer.serial_number,
                            },
                        }
                    )
                ]
            }
        )
        ess_attr = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]}).dump()
        ct_attr = cms.CMSAttribute({"type": "content_type", "values": ["data"]}).dump()
        sid = cms.SignerIdentifier(
            {
                "issuer_and_serial_number": {
                    "issuer": signer.issuer,
                    "serial_number": signer.serial_number,
                }
            }
        ).dump()
        digest_alg = algos.DigestAlgorithm({"algorithm": digest_algorithm}).dump()
        sig_alg = signature_algorithm(scheme, digest_algorithm).dump()
        certs_der = b"".join(sorted([signer_der, *chain_der]))  # DER SET OF order
        return cls(
            signer,
            (signer, *chain),
            digest_algorithm,
            scheme,
            ct_attr,
            ess_attr,
            sid,
            digest_alg,
            sig_alg,
            certs_der,
        )

    def signed_attributes(self, message_digest: bytes) -> bytes:
        """DER (SET OF) of the signed attributes; this is what the token signs.

        PAdES baseline: content-type, message-digest, signing-certificate-v2;
        no CMS signing-time (the claimed time is the signature dictionary's /M).
        """
        md_attr = tlv(0x30, _OID_MESSAGE_DIGEST + tlv(0x31, tlv(0x04, message_digest)))
        return der_set_of([self.content_type_attr, md_attr, self.ess_attr])

    def signed_data(
        self,
        signed_attrs_der: bytes,
        signature: bytes,
        *,
        timestamp_token: cms.ContentInfo | None = None,
    ) -> bytes:
        """The DER ContentInfo(SignedData) to embed."""
        # signedAttrs are [0] IMPLICIT in SignerInfo: same body, context tag.
        signed_attrs = b"\xa0" + signed_attrs_der[1:]
        unsigned = b""
        if timestamp_token is not None:
            attr = cms.CMSAttribute(
                {"type": "signature_time_stamp_token", "values": [timestamp_token]}
            ).dump()
            unsigned = tlv(0xA1, attr)
        signer_info = tlv(
            0x30,
            tlv(0x02, b"\x01")
            + self.sid
            + self.digest_alg_id
            + signed_attrs
            + self.signature_alg_id
            + tlv(0x04, signature)
            + unsigned,
        )
        signed_data = tlv(
            0x30,
            tlv(0x02, b"\x01")
            + tlv(0x31, self.digest_alg_id)
            + tlv(0x30, bytes.fromhex("06092a864886f70d010701"))  # encapContentInfo: id-data
            + tlv(0xA0, self.certificates_der)
            + tlv(0x31, signer_info),
        )
        return tlv(0x30, bytes.fromhex("06092a864886f70d010702") + tlv(0xA0, signed_data))

    def size_bound(self, signature_size: int, timestamp_allowance: int = 0) -> int:
        """Bytes of DER the container can take, with room for variation."""
        dummy = self.signed_data(self.signed_attributes(b"\x00" * 64), b"\xff" * signature_size)
        return len(dummy) + 64 + timestamp_allowance


def signature_size(key_type: str, key_size: int | None) -> int:
    """Largest signature value the key can produce (DER ECDSA included)."""
    bits = key_size or 4096
    if key_type == "EC":
        n = (bits + 7) // 8
        return 2 * (n + 1) + 8
    return (bits + 7) // 8
