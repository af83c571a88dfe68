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


@dataclass(frozen=True)
class CmsTemplate:
    """Everything about the container that does not change from document to document."""

    signer_cert: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    digest_algorithm: str
    scheme: SignatureScheme
    signing_certificate_v2: cms.CMSAttribute

    @classmethod
    def create(
        cls,
        *,
        signer_der: bytes,
        chain_der: tuple[bytes, ...],
        digest_algorithm: str,
        scheme: SignatureScheme,
    ) -> CmsTemplate:
        """Parse the certificates once and pre-build the ESS attribute."""
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
        attr = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [ess]})
        return cls(signer, (signer, *chain), digest_algorithm, scheme, attr)

    def signed_attributes(self, message_digest: bytes) -> bytes:
        """DER (SET OF) of the signed attributes; this is what the token signs.

        PAdES baseline: content-type, message-digest, signing-certificate-v2;
        no CMS signing-time (the claimed time is the signature dictionary's /M).
        """
        attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
                cms.CMSAttribute({"type": "message_digest", "values": [message_digest]}),
                self.signing_certificate_v2,
            ]
        )
        return bytes(attrs.dump())

    def signed_data(
        self,
        signed_attrs_der: bytes,
        signature: bytes,
        *,
        timestamp_token: cms.ContentInfo | None = None,
    ) -> bytes:
        """The DER ContentInfo(SignedData) to embed."""
        signer_info = {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": {
                        "issuer": self.signer_cert.issuer,
                        "serial_number": self.signer_cert.serial_number,
                    }
                }
            ),
            "digest_algorithm": {"algorithm": self.digest_algorithm},
            "signed_attrs": cms.CMSAttributes.load(signed_attrs_der),
            "signature_algorithm": signature_algorithm(self.scheme, self.digest_algorithm),
            "signature": signature,
        }
        if timestamp_token is not None:
            signer_info["unsigned_attrs"] = cms.CMSAttributes(
                [
                    cms.CMSAttribute(
                        {"type": "signature_time_stamp_token", "values": [timestamp_token]}
                    )
                ]
            )
        signed_data = cms.SignedData(
            {
                "version": "v1",
                "digest_algorithms": [{"algorithm": self.digest_algorithm}],
                "encap_content_info": {"content_type": "data"},
                "certificates": list(self.certificates),
                "signer_infos": [cms.SignerInfo(signer_info)],
            }
        )
        return bytes(
            cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
        )

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
