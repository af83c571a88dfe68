"""What crosses between the main process and the XML workers: the batch's
configuration, a document's item, its prepared Signature, and the stage
entry points. Light on purpose: the main process builds and reads these
without importing the XML stack (lxml, the canonicaliser, XAdES), which the
workers use (and the main process only to judge an output already there)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signkit.formats.plugin import BatchSigner
from signkit.formats.xml.options import XmlDocOptions

if TYPE_CHECKING:
    from signkit.formats.finished import Finished


@dataclass(frozen=True, kw_only=True)
class XmlBatchConfig(BatchSigner):
    """What every worker needs, the same for the whole batch (picklable, no secrets)."""

    key_type: str
    """'RSA' or 'EC'."""
    key_size: int
    """Key size in bits."""
    tax_code: str | None = None
    """The MST: tax code in the signer's subject, if any."""


@dataclass(frozen=True)
class PrepareItem:
    """One document handed to a worker."""

    index: int
    """Position in the batch."""
    input: str
    """The document."""
    output: str
    """Where the signed document goes."""
    temp: str
    """The temp file finish writes."""
    options: XmlDocOptions
    """The document's options."""
    config: XmlBatchConfig
    """The batch's configuration."""


@dataclass(frozen=True)
class Prepared:
    """A document with its Signature laid out, waiting for the signature value."""

    config: XmlBatchConfig
    index: int
    input: str
    temp: str
    to_sign: bytes
    """The canonical SignedInfo."""
    head: bytes
    """Output bytes before the SignatureValue text."""
    middle: bytes
    """Output bytes from the SignatureValue text to where unsigned properties go."""
    tail: bytes
    """The rest of the output."""
    value_c14n: tuple[bytes, bytes]
    """Canonical SignatureValue element around its text (the B-T time-stamp input)."""
    c14n_uri: str
    """Canonicalisation of SignedInfo (and of the SignatureTimeStamp)."""
    signature_id: str
    ds_prefix: str
    id_attributes: tuple[str, ...]
    sha256_before: str
    signing_time: str
    level: str
    warnings: tuple[str, ...] = ()
    size_before: int | None = None


def tax_code_of(cert_der: bytes) -> str | None:
    """The ``MST:<tax code>`` carried in a Vietnamese certificate's subject, if any."""
    from cryptography import x509

    for attr in x509.load_der_x509_certificate(cert_der).subject:
        value = attr.value if isinstance(attr.value, str) else ""
        m = re.search(r"MST:\s*([0-9A-Za-z-]+)", value)
        if m:
            return m.group(1)
    return None


def worker_prepare(item: PrepareItem) -> Prepared:
    """Stage 1 (worker): see sign.worker_prepare."""
    from signkit.formats.xml.sign import worker_prepare as prepare

    return prepare(item)


def worker_finish(prepared: Prepared, signature: bytes) -> Finished:
    """Stage 3 (worker): see sign.worker_finish."""
    from signkit.formats.xml.sign import worker_finish as finish

    return finish(prepared, signature)
