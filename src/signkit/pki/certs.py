"""Certificate facts for people: names, validity, usages, fingerprints."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from signkit.errors import InputFormatError
from signkit.tokens.model import CertInfo

_KU_NAMES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
# The PKIX names people know; cryptography calls nonRepudiation content_commitment.
_KU_DISPLAY = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


def public_key_id_from_rsa(modulus: int) -> str:
    """Pairing id of an RSA public key (from its modulus)."""
    raw = modulus.to_bytes((modulus.bit_length() + 7) // 8, "big")
    return hashlib.sha256(b"rsa:" + raw).hexdigest()


def public_key_id_from_ec_point(point: bytes) -> str:
    """Pairing id of an EC public key (from its uncompressed point)."""
    return hashlib.sha256(b"ec:" + point).hexdigest()


def load_certificate(der: bytes, *, source: str) -> x509.Certificate:
    """Parse DER, naming ``source`` when it is not a certificate."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise InputFormatError("not a DER X.509 certificate", subject=source) from exc


def public_key_id(cert: x509.Certificate) -> str | None:
    """Pairing id of a certificate's public key, or None for other key types."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return public_key_id_from_rsa(key.public_numbers().n)
    if isinstance(key, ec.EllipticCurvePublicKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return public_key_id_from_ec_point(
            key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        )
    return None


def describe_certificate(der: bytes, *, label: str = "", id: bytes = b"") -> CertInfo:
    """Facts about one certificate, for listings and selection."""
    cert = load_certificate(der, source=label or "certificate")
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        usages = []
        for name in _KU_NAMES:
            if getattr(ku, name):
                usages.append(_KU_DISPLAY[name])
        if ku.key_agreement:
            if ku.encipher_only:
                usages.append("encipherOnly")
            if ku.decipher_only:
                usages.append("decipherOnly")
    except x509.ExtensionNotFound:
        usages = []
    try:
        eku_ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ekus = [_EKU_NAMES.get(oid, oid.dotted_string) for oid in eku_ext]
    except x509.ExtensionNotFound:
        ekus = []
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return CertInfo(
        label=label,
        id=id,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=hashlib.sha256(der).hexdigest(),
        key_usage=tuple(usages),
        extended_key_usage=tuple(ekus),
        is_ca=is_ca,
        public_key_id=public_key_id(cert),
        der=der,
    )
