"""How a document format plugs into the one signing pipeline (jobs/signing.py).

A format says which files are its own, how a manifest row changes its
options, what every worker needs for the batch, and supplies the two worker
stages (module-level functions: they cross processes). Everything else
(planning, the token, the signer check, time-stamp preflight, audit, resume,
publication, reports) is the pipeline's, the same for every format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol, TypedDict

from signkit.formats.finished import Finished
from signkit.pki.timestamps import TsaSpec
from signkit.tokens.model import SignatureScheme


class DocOptions(Protocol):
    """A format's per-document settings: at least the signature level."""

    @property
    def level(self) -> str:
        """Baseline level of this document's signature."""
        ...


class OutputState(Enum):
    """What an existing output is, for resume."""

    DONE = "done"
    """It carries this signer's intact signature over the current input: skip."""
    STALE = "stale"
    """It carries this signer's intact signature over an earlier input: sign again."""
    FOREIGN = "foreign"
    """Anything else (another signer, a broken signature, not ours at all): keep it."""


class Prepared(Protocol):
    """What a format's prepare stage hands the engine."""

    @property
    def index(self) -> int:
        """Position of the document in the batch."""
        ...

    @property
    def to_sign(self) -> bytes:
        """The bytes the token signs."""
        ...

    @property
    def sha256_before(self) -> str:
        """SHA-256 of the input as read."""
        ...

    @property
    def size_before(self) -> int | None:
        """Size of the input as read."""
        ...


@dataclass(frozen=True)
class Unchanged:
    """A prepare stage's answer for a document that needs no change (extend:
    already at the level asked, or its archive time-stamp not yet due). The
    engine reports it skipped, with the reason, and writes nothing."""

    index: int
    """Position of the document in the batch."""
    reason: str
    """Why nothing was done, for the report and the audit record."""
    sha256_before: str
    """SHA-256 of the input as read."""
    size_before: int | None = None
    """Size of the input as read."""
    to_sign: bytes = b""
    """Nothing to sign."""


class Item(Protocol):
    """The picklable work item of one document."""

    @property
    def index(self) -> int:
        """Position of the document in the batch."""
        ...


@dataclass(frozen=True, kw_only=True)
class SignerContext:
    """What the pipeline established before any document is touched: the key's
    certificate and validated chain, the algorithms, the long-term material.
    Formats build their (picklable) batch configuration from it."""

    certificate_der: bytes
    """The signer certificate."""
    chain_der: tuple[bytes, ...]
    """The validated certification path, leaf first (DER)."""
    key_type: str
    """'RSA' or 'EC'."""
    key_size: int
    """Key size in bits."""
    digest_algorithm: str
    """Message digest."""
    scheme: SignatureScheme
    """pkcs1v15, pss or ecdsa."""
    tsa: TsaSpec | None
    """Time-stamping authority (B-T and above)."""
    needs_tsa: bool
    """Some document of the batch asks for a time-stamp."""
    ltv_certs: tuple[bytes, ...] = ()
    """Certificates of the signer's and the TSA's chains (long-term levels)."""
    ltv_ocsps: tuple[bytes, ...] = ()
    """OCSP responses for them."""
    ltv_crls: tuple[bytes, ...] = ()
    """CRLs for them."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """Zone of signing times shown to people."""
    signer_name: str = ""
    """The certificate's common name."""
    signer_org: str = ""
    """The certificate's organisation."""
    signer_serial: str = ""
    """The certificate's serial number in hex."""


@dataclass(frozen=True, kw_only=True)
class BatchSigner:
    """The signer as every worker of a batch needs it: the base of each
    format's batch configuration (picklable, no secrets)."""

    signer_der: bytes
    """The signer certificate."""
    chain_der: tuple[bytes, ...]
    """Intermediates the signature carries (the leaf excluded)."""
    digest_algorithm: str
    """hashlib name of the digests."""
    scheme: SignatureScheme
    """pkcs1v15, pss or ecdsa."""
    tsa: TsaSpec | None
    """Time-stamping authority (B-T and above)."""
    ltv_certs: tuple[bytes, ...] = ()
    """B-LT: certificates of the signer's and the TSA's chains (DER)."""
    ltv_ocsps: tuple[bytes, ...] = ()
    """B-LT: OCSP responses for them (DER)."""
    ltv_crls: tuple[bytes, ...] = ()
    """B-LT: CRLs for them (DER)."""
    timezone: str = "Asia/Ho_Chi_Minh"
    """Zone of signing times shown to people."""


class BatchSignerFields(TypedDict):
    """BatchSigner's fields, for a format's configuration to take with **."""

    signer_der: bytes
    chain_der: tuple[bytes, ...]
    digest_algorithm: str
    scheme: SignatureScheme
    tsa: TsaSpec | None
    ltv_certs: tuple[bytes, ...]
    ltv_ocsps: tuple[bytes, ...]
    ltv_crls: tuple[bytes, ...]
    timezone: str


def batch_signer(
    context: SignerContext, chain_der: tuple[bytes, ...] | None = None
) -> BatchSignerFields:
    """BatchSigner's fields from the pipeline's context (``chain_der``: the
    intermediates the format carries; default: the path without the leaf)."""
    return {
        "signer_der": context.certificate_der,
        "chain_der": context.chain_der[1:] if chain_der is None else chain_der,
        "digest_algorithm": context.digest_algorithm,
        "scheme": context.scheme,
        "tsa": context.tsa,
        "ltv_certs": context.ltv_certs,
        "ltv_ocsps": context.ltv_ocsps,
        "ltv_crls": context.ltv_crls,
        "timezone": context.timezone,
    }


@dataclass(frozen=True, kw_only=True)
class Stages:
    """The worker stages and the per-document item builder of one batch."""

    prepare: Callable[[Item], Prepared]
    """Worker: item -> prepared (placeholder written, bytes to sign computed)."""
    finish: Callable[[Prepared, bytes], Finished]
    """Worker: (prepared, signature) -> the finished, checked temp file."""
    make_item: Callable[[int, PlannedDocLike, Path], Item]
    """Main: the work item of one planned document."""


class PlannedDocLike(Protocol):
    """The parts of a planned document a format reads (see jobs/outputs.PlannedDoc)."""

    @property
    def input(self) -> Path:
        """The input document."""
        ...

    @property
    def output(self) -> Path:
        """Where the signed document goes."""
        ...

    @property
    def in_place(self) -> bool:
        """The output replaces the input."""
        ...

    @property
    def options(self) -> DocOptions:
        """The document's resolved options."""
        ...


class BatchFormat(Protocol):
    """What the batch engine needs of a format (signing or extending)."""

    name: str
    """'pdf', 'xml', 'cms', 'extend': named in reports and audit records."""

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """Resume: what the existing output of ``doc`` is (see OutputState)."""
        ...


class FormatPlugin(Protocol):
    """One document format of the signing pipeline.

    Optional: ``output_extension(options) -> str`` makes each output a file
    of its own named after its input (a.docx -> a.docx.p7s), and
    ``exclude_extensions`` names files a directory search passes over.
    """

    name: str
    """'pdf', 'xml', …: named in reports and audit records."""
    extensions: tuple[str, ...]
    """File name endings of its documents (directories are searched for them)."""
    manifest_columns: frozenset[str]
    """Manifest columns a row may set besides input and output."""
    timestamped_levels: frozenset[str]
    """Levels that need a time-stamping authority."""
    long_term_levels: frozenset[str]
    """Levels that carry validation material (chains, OCSP, CRLs)."""

    @property
    def warmup(self) -> tuple[str, str]:
        """(module, function) a worker runs to import this format's stack ahead of time."""
        ...

    light_stages: bool
    """Its worker stages cost less per document than the main process's share
    (the token, the bookkeeping): one CPU is left to the main process."""

    def resolve(self, overrides: Mapping[str, str]) -> DocOptions:
        """The job's options with a manifest row's overrides, validated."""
        ...

    def check_plan(self, docs: Sequence[PlannedDocLike]) -> None:
        """Refuse a plan this format cannot carry out (before the token opens)."""
        ...

    def check_document(self, doc: PlannedDocLike) -> None:
        """--dry-run: raise a SignkitError when ``doc`` cannot be signed as planned
        (what can be told without the token)."""
        ...

    def preflight(self, docs: Sequence[PlannedDocLike], warn: Callable[[str], None]) -> None:
        """Warnings about the batch a person should read before it is signed."""
        ...

    def passes(self, docs: Sequence[PlannedDocLike]) -> list[list[PlannedDocLike]]:
        """Documents per signing pass (one pass unless a layout adds several signatures)."""
        ...

    def stages(self, context: SignerContext) -> Stages:
        """The worker stages of a batch signed in ``context``."""
        ...

    def output_state(self, doc: PlannedDocLike, signer_sha256: str) -> OutputState:
        """Resume: what the existing output of ``doc`` is (see OutputState)."""
        ...
