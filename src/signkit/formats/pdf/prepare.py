"""Stage 1 (worker): the incremental update with a reserved /Contents written
into a temp file next to the output, the /ByteRange digest and the signed
attributes the token signs."""

from __future__ import annotations

import asyncio
import decimal
import hashlib
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any, TypeVar
from zoneinfo import ZoneInfo

from signkit.errors import (
    DocumentError,
    InputFormatError,
    OutputError,
    SignkitError,
)
from signkit.faults import input_faults
from signkit.formats.cms.container import CmsTemplate
from signkit.formats.pdf import plain
from signkit.formats.pdf.anchor import (
    box_for,
    font_advance,
    locate,
    parse_pair,
)
from signkit.formats.pdf.appearance import (
    DEFAULT_TEXT,
    AppearanceValues,
    parse_rect,
    place_rect,
    rotated_style,
    slots_style,
    stamp_style,
)
from signkit.formats.pdf.decree30 import fit_between, fit_image, seal_box, slot_layout
from signkit.formats.pdf.encryption import Access, writer_access
from signkit.formats.pdf.options import PdfDocOptions
from signkit.formats.plugin import BatchSigner
from signkit.fsio import copy_hashing, open_regular

TIMESTAMP_ALLOWANCE = 12 * 1024

_T = TypeVar("_T")


CHUNK = 1 << 20


# A new temp file only: never an existing file, never through a symlink.
_CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


# Documents up to this size are laid out in memory (fewer system calls);
# larger ones stream through the temp file so memory stays bounded.
IN_MEMORY_LIMIT = 32 << 20


@dataclass(frozen=True, kw_only=True)
class PdfBatchConfig(BatchSigner):
    """What every worker needs, the same for the whole batch (picklable, no secrets)."""

    bytes_reserved: int
    password: str | None = field(default=None, repr=False)
    font_path: str = ""
    italic_font_path: str = ""
    signer_name: str = ""
    signer_org: str = ""
    signer_serial: str = ""


@dataclass(frozen=True)
class PrepareItem:
    """One document handed to a worker (with the batch config: a few KB)."""

    index: int
    input: str
    temp: str
    options: PdfDocOptions
    config: PdfBatchConfig


@dataclass(frozen=True)
class Prepared:
    """A document with its placeholder written and its digest computed."""

    config: PdfBatchConfig
    index: int
    temp: str
    to_sign: bytes
    document_digest: bytes
    reserved_start: int
    reserved_end: int
    signed_length: int
    sha256_before: str
    signing_time: str
    level: str
    size_before: int | None = None
    warnings: tuple[str, ...] = ()
    """What a person should see about this document (a shrunk signature image)."""


class WorkerState:
    """Per-process state, built once by ``worker_init``."""

    def __init__(self, config: PdfBatchConfig) -> None:
        self.config = config
        self.template = CmsTemplate.create(
            signer_der=config.signer_der,
            chain_der=config.chain_der,
            digest_algorithm=config.digest_algorithm,
            scheme=config.scheme,
        )
        self.zone = ZoneInfo(config.timezone)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ext_signer: Any = None

    @property
    def ext_signer(self) -> Any:
        """pyHanko's signer for its layout (made for the first document that
        needs pyHanko); the CMS is ours, so its value is a placeholder."""
        if self._ext_signer is None:
            from asn1crypto import x509
            from pyhanko.sign.signers.pdf_cms import ExternalSigner
            from pyhanko_certvalidator.registry import SimpleCertificateStore

            cert = x509.Certificate.load(self.config.signer_der)
            store = SimpleCertificateStore.from_certs(
                [x509.Certificate.load(d) for d in self.config.chain_der]
            )
            self._ext_signer = ExternalSigner(cert, store, signature_value=b"\x00" * 8)
        return self._ext_signer

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """One event loop per worker, for the few pyHanko calls that need one."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop


_STATE: WorkerState | None = None


# What a worker needs for its first document, imported ahead of it: on the
# plain path (plain.py), and on pyHanko's.
PLAIN_WARMUP_MODULES = (
    "cryptography.exceptions",
    "cryptography.hazmat.primitives.asymmetric.ec",
    "cryptography.hazmat.primitives.asymmetric.padding",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "cryptography.hazmat.primitives.hashes",
    "cryptography.x509",
)
WARMUP_MODULES = (
    "pyhanko.pdf_utils.incremental_writer",
    "pyhanko.sign.fields",
    "pyhanko.sign.general",
    "pyhanko.sign.signers",
    "pyhanko.sign.signers.pdf_byterange",
    "pyhanko.sign.signers.pdf_cms",
    "pyhanko.sign.validation.dss",
    "pyhanko_certvalidator.registry",
)


def worker_warmup_plain() -> None:
    """Import what the plain path needs ahead of the first document (a task,
    run early): a batch of invisible signatures on plain documents never
    loads pyHanko (about half a second of CPU per worker)."""
    import importlib

    from signkit.startup import imports_without_gc

    with imports_without_gc():
        for name in PLAIN_WARMUP_MODULES:
            importlib.import_module(name)
        plain.producer()


def worker_warmup() -> None:
    """Import the whole PDF stack, pyHanko included, ahead of the first document."""
    import importlib

    from signkit.startup import imports_without_gc

    worker_warmup_plain()
    with imports_without_gc():
        for name in WARMUP_MODULES:
            importlib.import_module(name)


def worker_state(config: PdfBatchConfig) -> WorkerState:
    """The worker state for this batch's config (built once per worker)."""
    global _STATE
    if _STATE is None or _STATE.config != config:
        _STATE = WorkerState(config)
    return _STATE


def _open_writer(fh: IO[bytes], source: str, password: str | None) -> tuple[Any, Access | None]:
    """pyHanko's incremental writer on ``fh`` and, for an encrypted PDF, what
    the password that opened it allows (None: not encrypted)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    head = fh.read(1024)
    fh.seek(0)
    if b"%PDF-" not in head:
        raise InputFormatError("not a PDF (no %PDF- header)", subject=source)
    with input_faults(source, "malformed PDF"):
        writer = IncrementalPdfFileWriter(fh, strict=False)
    size = writer.prev.trailer_view.get("/Size")
    if not isinstance(size, int) or size > plain.MAX_OBJECT_NUMBER:
        # The signature's objects are numbered from /Size: past the limit,
        # readers cannot open the signed copy.
        raise InputFormatError(
            f"malformed PDF (the trailer's /Size, {str(size)[:20]}, is not an object "
            f"count a PDF may have: at most {plain.MAX_OBJECT_NUMBER:,})",
            subject=source,
        )
    if not writer.prev.encrypted:
        return writer, None
    with input_faults(source, "cannot open the encrypted PDF"):
        access = writer_access(
            writer,
            source,
            password,
            hint="give the password with --password-file or SIGNKIT_PDF_PASSWORD",
        )
    return writer, access


def _respect_permissions(
    writer: Any, access: Access | None, opts: PdfDocOptions, source: str
) -> None:
    """Refuse a signature the encrypted document's permissions forbid to the
    password that opened it, as PDF readers do (pyHanko leaves that to us)."""
    from pyhanko.sign.fields import enumerate_sig_fields

    if access is None or access.owner:
        return
    empty = {name for name, _, _ in enumerate_sig_fields(writer, filled_status=False)}
    existing = opts.field in empty and not opts.certify and not opts.then
    if access.add or (existing and access.fill):
        return
    if not access.fill:
        what = "not even filling in form fields"
    elif opts.certify:
        what = "a certifying signature changes more than a form field"
    elif empty:
        names = ", ".join(sorted(empty))
        what = f"only an empty signature field may be signed: --field {names}"
    else:
        what = "only an existing empty signature field may be signed, and it has none"
    raise DocumentError(
        f"the PDF's permissions do not allow this signature ({what}); its owner password would",
        subject=source,
        hint="give the owner password with --password-file or SIGNKIT_PDF_PASSWORD "
        "(the signed copy stays encrypted as the original is)",
    )


def _page_count(writer: Any, source: str) -> int:
    count = _entry(_entry(writer.root, "/Pages"), "/Count")
    if not _integer(count) or count < 1:
        raise InputFormatError(
            "malformed PDF (the page tree's /Count is not a number of pages)", subject=source
        )
    return int(count)


def _page_index(writer: Any, page: str | None, source: str) -> int:
    count = _page_count(writer, source)
    index = count - 1 if page == "last" else int(page or "1") - 1
    if not 0 <= index < count:
        raise InputFormatError(f"page {page} does not exist ({count} pages)", subject=source)
    return index


_MAX_TREE_DEPTH = 64
"""Levels of the page tree climbed for an inherited page attribute."""


def _page_geometry(
    writer: Any, index: int, source: str
) -> tuple[tuple[float, float, float, float], int]:
    """The page's crop box (else its media box) and /Rotate, inherited as
    readers inherit them; an input error when the page has neither box, or a
    /Rotate that is not a multiple of 90 (readers disagree on such a page)."""
    page = writer.find_page_for_modification(index)[0].get_object()

    def inherited(key: str) -> Any:
        node = page
        for _ in range(_MAX_TREE_DEPTH):
            value = _entry(node, key)
            if value is not None:
                return value
            node = _entry(node, "/Parent")
            if node is None:
                return None
        raise InputFormatError(
            f"malformed PDF (the page tree above page {index + 1} loops or is deeper "
            f"than {_MAX_TREE_DEPTH} levels)",
            subject=source,
        )

    box = _box(inherited("/CropBox")) or _box(inherited("/MediaBox"))
    if box is None:
        raise InputFormatError(
            f"malformed PDF (page {index + 1} has no valid /MediaBox)", subject=source
        )
    rotate = inherited("/Rotate")
    if rotate is None:
        return box, 0
    if not _integer(rotate) or rotate % 90:
        raise InputFormatError(
            f"page {index + 1} is turned by {str(rotate)[:20]}, not a multiple of 90 degrees: "
            "a visible signature cannot be placed on it",
            subject=source,
            hint="sign it without a visible signature, or save it again in the program "
            "that made it",
        )
    return box, int(rotate)


def _entry(node: Any, key: str) -> Any:
    """``node[key]``, the object it refers to; None when ``node`` is not a
    dictionary or has no such entry (or a null one)."""
    from pyhanko.pdf_utils.generic import DictionaryObject

    if not isinstance(node, DictionaryObject):
        return None
    try:
        return node[key]
    except KeyError:
        return None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _box(value: Any) -> tuple[float, float, float, float] | None:
    """A rectangle of four numbers, normalised; None when ``value`` is none, or empty."""
    from pyhanko.pdf_utils.generic import ArrayObject

    if not isinstance(value, ArrayObject) or len(value) != 4:
        return None
    numbers = []
    for i in range(4):
        item = value[i]
        if isinstance(item, bool) or not isinstance(item, int | decimal.Decimal):
            return None
        number = float(item)
        if not math.isfinite(number):
            return None
        numbers.append(number)
    x0, y0, x1, y1 = numbers
    if x0 == x1 or y0 == y1:
        return None
    return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


@dataclass(frozen=True)
class _Placement:
    """Where a visible signature goes: page, box (PDF units) and page rotation,
    and for text written into printed blanks, the texts, size and baseline."""

    index: int
    box: tuple[int, int, int, int]
    rotate: int
    slots: list[tuple[float, str]] | None = None
    size: float = 0.0
    baseline: float = 0.0
    font_path: str = ""
    warnings: tuple[str, ...] = ()


def worker_prepare(item: PrepareItem) -> Prepared:
    """Stage 1 (worker): placeholder, digest and signed attributes."""
    st = worker_state(item.config)
    try:
        with os.fdopen(open_regular(item.input), "rb") as fh:
            size_before = os.fstat(fh.fileno()).st_size
            now = datetime.now(st.zone).replace(microsecond=0)
            if size_before <= IN_MEMORY_LIMIT:
                # Small documents: read once, laid out in memory, one write.
                data = fh.read()
                if b"%PDF-" not in data[:1024]:  # said at once, on either path
                    raise InputFormatError("not a PDF (no %PDF- header)", subject=item.input)
                before = hashlib.sha256(data).hexdigest()
                layout = _plain_layout(data, item, st, now)
                if layout is not None:
                    output: Any = layout.output
                    region = _Region(
                        layout.document_digest(st.config.digest_algorithm),
                        layout.reserved_start,
                        layout.reserved_end,
                    )
                    warnings: tuple[str, ...] = ()
                else:
                    output, region, warnings = _by_pyhanko(item, _in_memory, data, item, st, now)
                with os.fdopen(_create_temp(item.temp), "w+b") as out:
                    out.write(output)
                    signed_length = out.tell()
            else:
                before, region, warnings, signed_length = _by_pyhanko(
                    item, _prepare_large, fh, item, st, now
                )
    except SignkitError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write the signed copy ({exc.strerror or exc})", subject=item.temp
        ) from None
    return Prepared(
        config=item.config,
        index=item.index,
        temp=item.temp,
        to_sign=st.template.signed_attributes(region.document_digest),
        document_digest=region.document_digest,
        reserved_start=region.start,
        reserved_end=region.end,
        signed_length=signed_length,
        sha256_before=before,
        signing_time=now.isoformat(),
        level=item.options.level,
        size_before=size_before,
        warnings=warnings,
    )


@dataclass(frozen=True)
class _Region:
    """The digest of the bytes /ByteRange covers, and the reserved /Contents."""

    document_digest: bytes
    start: int
    end: int


def _by_pyhanko(item: PrepareItem, layout: Callable[..., _T], *args: Any) -> _T:
    """``layout(*args)``, which lays the document out with pyHanko (imported
    only for the documents that need it): pyHanko's errors on a bad file
    become input errors; an exception from signkit's own code stays a bug."""
    from pyhanko.sign.general import SigningError

    with input_faults(item.input, "cannot sign this PDF"):
        try:
            return layout(*args)
        except SigningError as exc:
            raise DocumentError(str(exc), subject=item.input) from None


def _in_memory(
    data: bytes, item: PrepareItem, st: WorkerState, now: datetime
) -> tuple[memoryview, _Region, tuple[str, ...]]:
    """pyHanko's layout of a small document, in memory."""
    writer, access = _open_writer(io.BytesIO(data), item.input, st.config.password)
    tbs, warnings = _signing_session(writer, access, item, st, now)
    buffer = io.BytesIO()
    prepared, _ = tbs.digest_tbs_document(output=buffer)
    region = _Region(
        prepared.document_digest, prepared.reserved_region_start, prepared.reserved_region_end
    )
    return buffer.getbuffer(), region, warnings


def _plain_layout(
    data: bytes, item: PrepareItem, st: WorkerState, now: datetime
) -> plain.Layout | None:
    """The plain path's layout, or None when the document needs pyHanko."""
    cfg = st.config
    if not plain.eligible(
        item.options,
        password=cfg.password,
        scheme=cfg.scheme,
        digest_algorithm=cfg.digest_algorithm,
    ):
        return None
    try:
        return plain.sign_layout(
            data, item.options, now=now, bytes_reserved=st.config.bytes_reserved
        )
    except plain.NotPlain:
        return None


def _create_temp(path: str) -> int:
    # 0o666: the umask decides, as for any file the user creates
    return os.open(path, _CREATE_TEMP, 0o666)


def _prepare_large(
    fh: IO[bytes], item: PrepareItem, st: WorkerState, now: datetime
) -> tuple[str, _Region, tuple[str, ...], int]:
    """A large document: copied into the temp file once (hashed on the way,
    a reflink where the file system offers one), then pyHanko appends the
    incremental update to the copy in place, so the input is read once."""
    if b"%PDF-" not in fh.read(1024):
        raise InputFormatError("not a PDF (no %PDF- header)", subject=item.input)
    fh.seek(0)
    with os.fdopen(_create_temp(item.temp), "w+b") as out:
        hasher = hashlib.sha256()
        copy_hashing(fh.fileno(), out.fileno(), hasher)
        out.seek(0)
        writer, access = _open_writer(out, item.input, st.config.password)
        tbs, warnings = _signing_session(writer, access, item, st, now)
        prepared, _ = tbs.digest_tbs_document(in_place=True, chunk_size=CHUNK)
        out.seek(0, os.SEEK_END)
        region = _Region(
            prepared.document_digest, prepared.reserved_region_start, prepared.reserved_region_end
        )
        return hasher.hexdigest(), region, warnings, out.tell()


def _signing_session(
    writer: Any, access: Access | None, item: PrepareItem, st: WorkerState, now: datetime
) -> tuple[Any, tuple[str, ...]]:
    """pyHanko's to-be-signed document (field, appearance and metadata), and
    what a person should be told about its placement."""
    from pyhanko.sign import fields as sigfields
    from pyhanko.sign import signers

    cfg, opts = st.config, item.options
    _respect_permissions(writer, access, opts, item.input)
    name = opts.field or _free_field_name(writer)
    _respect_field_locks(writer, name, item.input)
    style = None
    spec = None
    warnings: tuple[str, ...] = ()
    for later in opts.then:
        # a preset of several signatures is all or nothing: the later ones
        # must find their place before the first is made
        if later.visible:
            _place(writer, replace(item, options=later), cfg, now)
    if opts.visible:
        place = _place(writer, item, cfg, now)
        warnings = place.warnings
        style = _style(place, opts, cfg, now)
        spec = sigfields.SigFieldSpec(sig_field_name=name, on_page=place.index, box=place.box)
    meta = signers.PdfSignatureMetadata(
        field_name=name,
        md_algorithm=cfg.digest_algorithm,
        subfilter=sigfields.SigSeedSubFilter.PADES,
        reason=opts.reason,
        location=opts.location,
        contact_info=opts.contact,
        name=opts.name,
        certify=opts.certify,
        docmdp_permissions=sigfields.MDPPerm(opts.docmdp),
    )
    pdf_signer = signers.PdfSigner(
        meta, signer=st.ext_signer, stamp_style=style, new_field_spec=spec
    )
    session = pdf_signer.init_signing_session(writer)
    session.system_time = now
    tbs = session.prepare_tbs_document(validation_info=None, bytes_reserved=cfg.bytes_reserved)
    return tbs, warnings


def _respect_field_locks(writer: Any, name: str, source: str) -> None:
    """Refuse to sign the field ``name`` when an earlier signature locks it
    (FieldMDP): verifiers would then find that signature broken."""
    from pyhanko.sign.fields import FieldMDPAction

    for earlier in writer.prev.embedded_regular_signatures:
        lock = earlier.fieldmdp
        if lock is not None and lock.is_locked(name):
            what = "every field" if lock.action == FieldMDPAction.ALL else f"the field {name}"
            raise DocumentError(
                f"the earlier signature {earlier.field_name} locks {what} against later "
                "changes: signing would break that signature",
                subject=source,
                hint="sign the document before it is locked, or ask its signer for a copy "
                "without the lock",
            )


def _place(writer: Any, item: PrepareItem, cfg: PdfBatchConfig, now: datetime) -> _Placement:
    """The page and box of a visible signature, by preset, text or --rect."""
    opts, source = item.options, item.input
    if opts.over_signature:
        index, box = seal_box(writer.prev, opts, source)
        return _Placement(index, box, 0)
    if opts.placement in ("number-slot", "date-slots"):
        index = _page_index(writer, opts.page, source)
        cropbox, rotate = _page_geometry(writer, index, source)
        layout = slot_layout(source, index, opts, cfg, now, writer.prev)
        box = place_rect(layout.rect_mm, corner="bottom-left", cropbox=cropbox, rotate=rotate)
        return _Placement(
            index, box, rotate, layout.texts, layout.size, layout.baseline, layout.font_path
        )
    if opts.anchor_text is not None:
        pages = (
            [_page_index(writer, opts.page, source) + 1]
            if opts.page is not None
            else list(range(_page_count(writer, source), 0, -1))
        )
        page_no, match = locate(
            source,
            opts.anchor_text,
            pages=pages,
            occurrence=opts.anchor_occurrence,
            password=cfg.password,
            advance=font_advance(cfg.font_path),
            ignore_case=opts.anchor_ignore_case,
        )
        index = page_no - 1
        size_mm = parse_pair(opts.box_size, "--box-size")
        rect_mm = box_for(
            match,
            position=opts.anchor_position,
            size_mm=size_mm,
            offset_mm=parse_pair(opts.anchor_offset, "--anchor-offset"),
        )
        corner = "bottom-left"
        if _image_only(opts) and opts.anchor_position == "above":
            # the leader's signature: between the title and the printed name
            rect_mm, warnings = fit_between(
                source, page_no, match, cfg.password, size_mm, opts.image or "", opts
            )
            cropbox, rotate = _page_geometry(writer, index, source)
            box = place_rect(rect_mm, corner=corner, cropbox=cropbox, rotate=rotate)
            return _Placement(index, box, rotate, warnings=warnings)
    else:
        index = _page_index(writer, opts.page, source)
        rect_mm = parse_rect(opts.rect or "")
        corner = opts.corner
    cropbox, rotate = _page_geometry(writer, index, source)
    if _image_only(opts):
        # A preset's image alone (the leader's signature): the box takes the
        # image's proportions, so the widget is the image and the seal's
        # overlap is measured on it. A user's own box is kept.
        rect_mm = fit_image(rect_mm, opts.image or "")
    return _Placement(
        index, place_rect(rect_mm, corner=corner, cropbox=cropbox, rotate=rotate), rotate
    )


def _image_only(opts: PdfDocOptions) -> bool:
    """A preset's image without text (the leader's handwritten signature)."""
    return opts.preset is not None and bool(opts.image) and opts.text == ""


def _style(place: _Placement, opts: PdfDocOptions, cfg: PdfBatchConfig, now: datetime) -> Any:
    """The appearance: text in printed blanks, or the stamp (image and/or text)."""
    if place.slots is not None:
        inner = slots_style(
            slots=place.slots,
            font_path=place.font_path,
            font_size=place.size,
            baseline=place.baseline,
        )
        return rotated_style(inner, place.rotate)
    values = AppearanceValues(
        signer=opts.name or cfg.signer_name,
        org=cfg.signer_org,
        serial=cfg.signer_serial,
        time=now,
        reason=opts.reason or "",
        location=opts.location or "",
        doc_number=opts.doc_number or "",
        copy_form=opts.copy_form or "",
        copy_org=opts.copy_org or "",
    )
    text = (
        None
        if opts.image and opts.text == ""
        else values.render(opts.text if opts.text is not None else DEFAULT_TEXT)
    )
    return stamp_style(
        text=text,
        image=opts.image,
        layout_mode=opts.layout,
        font_path=cfg.font_path,
        font_size=opts.font_size,
        box=place.box,
        rotate=place.rotate,
    )


def check_placement(
    source: str,
    opts: PdfDocOptions,
    *,
    password: str | None,
    font_path: str,
    italic_font_path: str,
) -> None:
    """--dry-run: open ``source`` and find the place of each visible signature
    ``opts`` asks for (and of the later ones of its preset), as signing would;
    a SignkitError says why one cannot be placed. Nothing is written."""
    config = PdfBatchConfig(
        signer_der=b"",
        chain_der=(),
        digest_algorithm="sha256",
        scheme="pkcs1v15",
        bytes_reserved=0,
        tsa=None,
        password=password,
        font_path=font_path,
        italic_font_path=italic_font_path,
    )
    now = datetime.now(ZoneInfo(config.timezone)).replace(microsecond=0)
    try:
        with (
            input_faults(source, "cannot sign this PDF"),
            os.fdopen(open_regular(source), "rb") as fh,
        ):
            writer, access = _open_writer(fh, source, password)
            _respect_permissions(writer, access, opts, source)
            item = PrepareItem(index=0, input=source, temp="", options=opts, config=config)
            for step in (opts, *opts.then):
                if step.visible:
                    _place(writer, replace(item, options=step), config, now)
    except OSError as exc:
        raise InputFormatError(f"cannot read ({exc.strerror or exc})", subject=source) from None


def _free_field_name(writer: Any) -> str:
    from pyhanko.sign.fields import enumerate_sig_fields

    taken = {name for name, _, _ in enumerate_sig_fields(writer, filled_status=None)}
    n = 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"
