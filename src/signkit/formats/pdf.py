"""PAdES signing of PDFs, split into stages the batch engine runs in parallel.

``prepare`` (worker process): write the incremental update with a reserved
/Contents into a temp file next to the output and compute the /ByteRange
digest and the signed attributes. ``sign`` (main process, the one token
session): sign the attributes. ``finish`` (worker): time-stamp (B-T), embed
the CMS, add the DSS (B-LT) and a document time-stamp (B-LTA), fsync, and
check that the signature just made is intact before the engine publishes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from signkit.errors import (
    ConfigError,
    DocumentError,
    InputFormatError,
    OutputError,
    SignkitError,
    UsageError,
)
from signkit.formats.cms import CmsTemplate
from signkit.formats.finished import Finished
from signkit.formats.pdf_anchor import (
    POSITIONS,
    box_for,
    find_slots,
    font_advance,
    locate,
    page_words,
    parse_pair,
)
from signkit.formats.pdf_appearance import (
    CORNERS,
    DEFAULT_TEXT,
    MM,
    AppearanceValues,
    parse_rect,
    place_rect,
    rotated_style,
    slots_style,
    stamp_style,
)
from signkit.formats.pdf_presets import COPY_FORMS, get_preset
from signkit.fsio import open_regular
from signkit.timestamps import TsaSpec, request_timestamp
from signkit.tokens.model import SignatureScheme

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
EXTENSIONS = (".pdf",)
TIMESTAMP_ALLOWANCE = 12 * 1024
DOC_TIMESTAMP_RESERVE = 24 * 1024
_CHUNK = 1 << 20
# A new temp file only: never an existing file, never through a symlink.
_CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Documents up to this size are laid out in memory (fewer system calls);
# larger ones stream through the temp file so memory stays bounded.
IN_MEMORY_LIMIT = 32 << 20


@dataclass(frozen=True, kw_only=True)
class PdfDocOptions:
    """Per-document signature settings (every field is also a manifest column)."""

    level: str = "B-B"
    """PAdES baseline level."""
    reason: str | None = None
    """/Reason."""
    location: str | None = None
    """/Location."""
    contact: str | None = None
    """/ContactInfo."""
    name: str | None = None
    """/Name (signer name shown by readers)."""
    field: str | None = None
    """Signature field to fill or create."""
    page: str | None = None
    """Page for a new visible field: a number or 'last' (default 1; anchors search from the end)."""
    rect: str | None = None
    """X,Y,W,H in mm from ``corner`` (makes the signature visible)."""
    corner: str = "bottom-left"
    """Corner ``rect`` is measured from."""
    text: str | None = None
    """Appearance text template."""
    image: str | None = None
    """PNG shown in the appearance."""
    layout: str = "side"
    """Image and text 'side' by side or 'stacked'."""
    font_size: float = 9.0
    """Appearance text size in points."""
    anchor_text: str | None = None
    """Place the box by this text on the page (makes the signature visible)."""
    anchor_occurrence: int | None = None
    """Which occurrence on the page (1-based); default the last."""
    anchor_position: str = "above"
    """Box above, below, left or right of the text, or over it."""
    anchor_offset: str = "0,0"
    """DX,DY in mm added to the anchored position (right, up)."""
    box_size: str = "60,20"
    """W,H in mm of an anchored box."""
    certify: bool = False
    """Certification (DocMDP) signature."""
    docmdp: int = 2
    """DocMDP level with --certify: 1 no changes, 2 form filling, 3 + annotations."""
    preset: str | None = None
    """Document layout (see formats/pdf_presets.py): fills the options left unset."""
    seal_mm: float | None = None
    """Real diameter of the seal in mm (nd30-org)."""
    over_field: str | None = None
    """Field of the signature the seal overlaps (default: the last one with an image)."""
    doc_number: str | None = None
    """Document number and symbol, e.g. 12/QĐ-UBND ({doc_number} in the text)."""
    copy_form: str | None = None
    """Form of copy: SAO Y, SAO LỤC or TRÍCH SAO ({copy_form})."""
    copy_org: str | None = None
    """Copying organisation ({copy_org}; default the certificate's organisation)."""

    @property
    def visible(self) -> bool:
        """Whether this signature has an appearance on a page."""
        return (
            self.rect is not None
            or self.anchor_text is not None
            or self.placement in ("over-signature", "number-slot", "date-slots")
        )

    @property
    def placement(self) -> str:
        """How the preset places the signature ('free' without a preset)."""
        return get_preset(self.preset).placement if self.preset is not None else "free"

    @property
    def over_signature(self) -> bool:
        """Placed over an earlier signature (the organisation's seal)."""
        return self.placement == "over-signature"


# Manifest columns: the long option names (anchor-text) or the field names (anchor_text).
OVERRIDABLE = frozenset(f.name for f in fields(PdfDocOptions)) | frozenset(
    f.name.replace("_", "-") for f in fields(PdfDocOptions)
)


def _as_bool(value: str, column: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "y"):
        return True
    if low in ("0", "false", "no", "n", ""):
        return False
    raise UsageError(f"'{column}' must be true or false", subject=value)


def resolve_options(defaults: PdfDocOptions, overrides: Mapping[str, str]) -> PdfDocOptions:
    """Apply manifest overrides, then validate the result."""
    changes: dict[str, Any] = {}
    for key, raw in overrides.items():
        name = key.replace("-", "_")
        if name in ("certify",):
            changes[name] = _as_bool(raw, key)
        elif name in ("docmdp", "anchor_occurrence"):
            try:
                changes[name] = int(raw)
            except ValueError:
                raise UsageError(f"'{key}' must be a whole number", subject=raw) from None
        elif name in ("font_size", "seal_mm"):
            try:
                changes[name] = float(raw)
            except ValueError:
                raise UsageError(f"'{key}' must be a number", subject=raw) from None
        else:
            changes[name] = raw
    opts = _apply_preset(replace(defaults, **changes))
    if opts.level not in LEVELS:
        raise UsageError(f"level must be one of {', '.join(LEVELS)}", subject=opts.level)
    if opts.corner not in CORNERS:
        raise UsageError(f"corner must be one of {', '.join(CORNERS)}", subject=opts.corner)
    if opts.docmdp not in (1, 2, 3):
        raise UsageError("docmdp must be 1, 2 or 3", subject=str(opts.docmdp))
    if opts.layout not in ("side", "stacked"):
        raise UsageError("layout must be 'side' or 'stacked'", subject=opts.layout)
    if opts.rect is not None:
        parse_rect(opts.rect)
    if opts.rect is not None and opts.anchor_text is not None:
        raise UsageError("choose one of --rect and --anchor-text")
    if opts.anchor_position not in POSITIONS:
        raise UsageError(
            f"anchor position must be one of {', '.join(POSITIONS)}", subject=opts.anchor_position
        )
    parse_pair(opts.anchor_offset, "--anchor-offset")
    parse_pair(opts.box_size, "--box-size")
    if opts.page is not None and opts.page != "last":
        try:
            if int(opts.page) < 1:
                raise ValueError
        except ValueError:
            raise UsageError("page must be a number from 1, or 'last'", subject=opts.page) from None
    if opts.image is not None and not Path(opts.image).is_file():
        raise UsageError("appearance image not found", subject=opts.image)
    return opts


_DEFAULTS = PdfDocOptions()


def _apply_preset(opts: PdfDocOptions) -> PdfDocOptions:
    """Fill what the user left unset from the preset, then check its rules."""
    if opts.preset is None:
        return opts
    preset = get_preset(opts.preset)
    changes: dict[str, Any] = {}
    for key, raw in preset.options.items():
        name = key.replace("-", "_")
        if not hasattr(_DEFAULTS, name) or name == "preset":
            raise ConfigError(f"preset {preset.name}: unknown option '{key}'", subject=preset.name)
        if getattr(opts, name) == getattr(_DEFAULTS, name):
            changes[name] = float(raw) if name in ("font_size", "seal_mm") else raw
    if preset.placement == "corner" and (opts.anchor_text is not None):
        changes["rect"] = None  # the user placed it by text instead
    opts = replace(opts, **changes)
    for name in preset.requires:
        if getattr(opts, name) in (None, ""):
            raise UsageError(
                f"preset {preset.name} needs --{name.replace('_', '-')}", subject=preset.name
            )
    for name in preset.forbids:
        if getattr(opts, name) not in (None, False, ""):
            raise UsageError(
                f"preset {preset.name} does not allow --{name.replace('_', '-')}",
                subject=preset.name,
            )
    if preset.placement == "free" and not (opts.rect or opts.anchor_text):
        raise UsageError(
            f"preset {preset.name} needs --anchor-text (e.g. the signer's printed name) or --rect",
            subject=preset.name,
        )
    if opts.seal_mm is not None and not 5 <= opts.seal_mm <= 100:
        raise UsageError(
            "--seal-mm is the seal's diameter in mm (5 to 100)", subject=str(opts.seal_mm)
        )
    if opts.copy_form is not None:
        form = opts.copy_form.strip().upper()
        if form not in COPY_FORMS:
            raise UsageError(
                f"form of copy must be one of {', '.join(COPY_FORMS)}", subject=opts.copy_form
            )
        opts = replace(opts, copy_form=form)
    return opts


@dataclass(frozen=True, kw_only=True)
class PdfBatchConfig:
    """What every worker needs, the same for the whole batch (picklable, no secrets)."""

    signer_der: bytes
    chain_der: tuple[bytes, ...]
    digest_algorithm: str
    scheme: SignatureScheme
    bytes_reserved: int
    tsa: TsaSpec | None
    ltv_certs: tuple[bytes, ...] = ()
    ltv_ocsps: tuple[bytes, ...] = ()
    ltv_crls: tuple[bytes, ...] = ()
    timezone: str = "Asia/Ho_Chi_Minh"
    password: str | None = field(default=None, repr=False)
    font_path: str = ""
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


class _Worker:
    """Per-process state, built once by ``worker_init``."""

    def __init__(self, config: PdfBatchConfig) -> None:
        from asn1crypto import x509
        from pyhanko.sign.signers.pdf_cms import ExternalSigner
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        self.config = config
        self.template = CmsTemplate.create(
            signer_der=config.signer_der,
            chain_der=config.chain_der,
            digest_algorithm=config.digest_algorithm,
            scheme=config.scheme,
        )
        cert = x509.Certificate.load(config.signer_der)
        store = SimpleCertificateStore.from_certs(
            [x509.Certificate.load(d) for d in config.chain_der]
        )
        # pyHanko lays out the document; the CMS is ours, so its value is a placeholder.
        self.ext_signer = ExternalSigner(cert, store, signature_value=b"\x00" * 8)
        self.zone = ZoneInfo(config.timezone)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """One event loop per worker, for the few pyHanko calls that need one."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop


_STATE: _Worker | None = None


# What a worker needs for its first document, imported ahead of it.
WARMUP_MODULES = (
    "pyhanko.pdf_utils.incremental_writer",
    "pyhanko.sign.fields",
    "pyhanko.sign.signers",
    "pyhanko.sign.signers.pdf_byterange",
    "pyhanko.sign.signers.pdf_cms",
    "pyhanko.sign.validation.dss",
    "pyhanko_certvalidator.registry",
)


def worker_warmup() -> None:
    """Import the PDF stack ahead of the first document (a task, run early)."""
    import importlib

    from signkit.startup import imports_without_gc

    with imports_without_gc():
        for name in WARMUP_MODULES:
            importlib.import_module(name)


def _state(config: PdfBatchConfig) -> _Worker:
    """The worker state for this batch's config (built once per worker)."""
    global _STATE
    if _STATE is None or _STATE.config != config:
        _STATE = _Worker(config)
    return _STATE


def sha256_file(fh: IO[bytes]) -> str:
    """Hash a file in chunks (large files never sit in memory)."""
    h = hashlib.sha256()
    fh.seek(0)
    while chunk := fh.read(_CHUNK):
        h.update(chunk)
    fh.seek(0)
    return h.hexdigest()


def _open_writer(fh: IO[bytes], source: str, password: str | None) -> Any:
    from pyhanko.pdf_utils.crypt import AuthStatus
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError

    head = fh.read(1024)
    fh.seek(0)
    if b"%PDF-" not in head:
        raise InputFormatError("not a PDF (no %PDF- header)", subject=source)
    try:
        writer = IncrementalPdfFileWriter(fh, strict=False)
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputFormatError(f"malformed PDF ({str(exc)[:160]})", subject=source) from None
    if writer.prev.encrypted:
        if password is None:
            raise InputFormatError(
                "the PDF is encrypted",
                subject=source,
                hint="give the password with --password-file or SIGNKIT_PDF_PASSWORD",
            )
        result = writer.encrypt(password)
        if result.status == AuthStatus.FAILED:
            raise InputFormatError("wrong password for the encrypted PDF", subject=source)
    return writer


def _page_count(writer: Any) -> int:
    return int(writer.root["/Pages"]["/Count"])


def _page_index(writer: Any, page: str | None, source: str) -> int:
    count = _page_count(writer)
    index = count - 1 if page == "last" else int(page or "1") - 1
    if not 0 <= index < count:
        raise InputFormatError(f"page {page} does not exist ({count} pages)", subject=source)
    return index


def _page_geometry(writer: Any, index: int) -> tuple[tuple[float, float, float, float], int]:
    page = writer.find_page_for_modification(index)[0].get_object()

    def inherited(key: str) -> Any:
        node = page
        while node is not None:
            if key in node:
                return node[key]
            node = node.get("/Parent")
            node = node.get_object() if node is not None else None
        return None

    box = inherited("/CropBox") or inherited("/MediaBox")
    x0, y0, x1, y1 = (float(v) for v in box)
    rotate = int(inherited("/Rotate") or 0)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), rotate


def worker_prepare(item: PrepareItem) -> Prepared:
    """Stage 1 (worker): placeholder, digest and signed attributes."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields as sigfields
    from pyhanko.sign import signers
    from pyhanko.sign.general import SigningError

    st = _state(item.config)
    cfg = st.config
    opts = item.options
    try:
        with os.fdopen(open_regular(item.input), "rb") as fh:
            before = sha256_file(fh)
            size_before = os.fstat(fh.fileno()).st_size
            writer = _open_writer(fh, item.input, cfg.password)
            now = datetime.now(st.zone).replace(microsecond=0)
            style = None
            spec = None
            name = opts.field or _free_field_name(writer)
            slots: list[tuple[float, str]] | None = None
            if opts.over_signature:
                index, box = _seal_box(writer.prev, opts, item.input)
                rotate = 0
            elif opts.placement in ("number-slot", "date-slots"):
                index = _page_index(writer, opts.page, item.input)
                cropbox, rotate = _page_geometry(writer, index)
                rect_mm, slots, size, baseline = _slot_layout(item.input, index, opts, cfg, now)
                box = place_rect(rect_mm, corner="bottom-left", cropbox=cropbox, rotate=rotate)
            elif opts.visible:
                if opts.anchor_text is not None:
                    pages = (
                        [_page_index(writer, opts.page, item.input) + 1]
                        if opts.page is not None
                        else list(range(_page_count(writer), 0, -1))
                    )
                    page_no, match = locate(
                        item.input,
                        opts.anchor_text,
                        pages=pages,
                        occurrence=opts.anchor_occurrence,
                        password=cfg.password,
                        advance=font_advance(cfg.font_path),
                    )
                    index = page_no - 1
                    rect_mm = box_for(
                        match,
                        position=opts.anchor_position,
                        size_mm=parse_pair(opts.box_size, "--box-size"),
                        offset_mm=parse_pair(opts.anchor_offset, "--anchor-offset"),
                    )
                    corner = "bottom-left"
                else:
                    index = _page_index(writer, opts.page, item.input)
                    rect_mm = parse_rect(opts.rect or "")
                    corner = opts.corner
                cropbox, rotate = _page_geometry(writer, index)
                if opts.preset is not None and opts.image and opts.text == "":
                    # A preset's image alone (the leader's signature): the box takes
                    # the image's proportions, so the widget is the image and the
                    # seal's overlap is measured on it. A user's own box is kept.
                    rect_mm = _fit_image(rect_mm, opts.image)
                box = place_rect(rect_mm, corner=corner, cropbox=cropbox, rotate=rotate)
            if opts.visible:
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
                style = (
                    rotated_style(
                        slots_style(
                            slots=slots,
                            font_path=cfg.font_path,
                            font_size=size,
                            baseline=baseline,
                        ),
                        rotate,
                    )
                    if slots is not None
                    else stamp_style(
                        text=text,
                        image=opts.image,
                        layout_mode=opts.layout,
                        font_path=cfg.font_path,
                        font_size=opts.font_size,
                        box=box,
                        rotate=rotate,
                    )
                )
                spec = sigfields.SigFieldSpec(sig_field_name=name, on_page=index, box=box)
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
            tbs = session.prepare_tbs_document(
                validation_info=None, bytes_reserved=cfg.bytes_reserved
            )
            # 0o666: the umask decides, as for any file the user creates
            fd = os.open(item.temp, _CREATE_TEMP, 0o666)
            with os.fdopen(fd, "w+b") as out:
                if os.fstat(fh.fileno()).st_size <= IN_MEMORY_LIMIT:
                    # Small documents: lay out in memory, then one write.
                    buffer = io.BytesIO()
                    prepared, _ = tbs.digest_tbs_document(output=buffer)
                    out.write(buffer.getbuffer())
                else:
                    prepared, _ = tbs.digest_tbs_document(output=out)
                out.seek(0, os.SEEK_END)
                signed_length = out.tell()
    except SignkitError:
        raise
    except OSError as exc:
        raise OutputError(
            f"cannot write the signed copy ({exc.strerror or exc})", subject=item.temp
        ) from None
    except SigningError as exc:
        raise DocumentError(str(exc), subject=item.input) from None
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise InputFormatError(
            f"cannot sign this PDF ({str(exc)[:160]})", subject=item.input
        ) from None
    return Prepared(
        config=item.config,
        index=item.index,
        temp=item.temp,
        to_sign=st.template.signed_attributes(prepared.document_digest),
        document_digest=prepared.document_digest,
        reserved_start=prepared.reserved_region_start,
        reserved_end=prepared.reserved_region_end,
        signed_length=signed_length,
        sha256_before=before,
        signing_time=now.isoformat(),
        level=opts.level,
        size_before=size_before,
    )


def _slot_layout(
    source: str, index: int, opts: PdfDocOptions, cfg: PdfBatchConfig, now: datetime
) -> tuple[tuple[float, float, float, float], list[tuple[float, str]], float, float]:
    """Box (mm from the page's bottom-left), texts at x offsets, font size and
    baseline for text written into the blanks after printed labels ("Số:", "ngày")."""
    preset = get_preset(opts.preset or "")
    advance = font_advance(cfg.font_path)
    _width, height, words = page_words(source, index + 1, cfg.password)
    found = find_slots(words, list(preset.slot_labels), advance)
    labels = " … ".join(preset.slot_labels)
    if found is None:
        raise DocumentError(f"'{labels}' not found on page {index + 1}", subject=source)
    slots, top, bottom = found
    # The size of the line's own text (word boxes span about 1.04 em here).
    size = min(16.0, max(9.0, round((bottom - top) / 1.04 * 2) / 2))
    default_width = 12 * MM
    if preset.placement == "number-slot":
        slot = slots[0]
        if slot.filled:
            raise DocumentError(
                f"the blank after '{slot.label}' is already filled in", subject=source
            )
        number = (opts.doc_number or "").split("/")[0].strip()
        texts = [(slot, number)]
    else:
        texts = [(slots[0], _day(now.day)), (slots[1], _month(now.month))]
        if not slots[2].filled:
            texts.append((slots[2], str(now.year)))
        for slot, _ in texts:
            if slot.filled:
                raise DocumentError(
                    f"the blank after '{slot.label}' is already filled in", subject=source
                )
    left = texts[0][0].left
    right = max((s.right or s.left + default_width) for s, _ in texts)
    centres = [
        (((s.left + (s.right or s.left + default_width)) / 2) - left, text) for s, text in texts
    ]
    pad = 2.0
    rect_mm = (
        left / MM,
        (height - bottom - pad) / MM,
        (right - left) / MM,
        (bottom - top + 2 * pad) / MM,
    )
    # Times New Roman / Liberation Serif: descent 0.216 of ascent + descent 1.107
    baseline = pad + (bottom - top) * 0.216 / 1.107
    return rect_mm, centres, size, baseline


def _day(day: int) -> str:
    """Decree 30/2020: days under 10 take a leading zero."""
    return f"{day:02d}"


def _month(month: int) -> str:
    """Decree 30/2020: months 1 and 2 take a leading zero, the others do not."""
    return f"{month:02d}" if month < 3 else str(month)


def _fit_image(
    rect_mm: tuple[float, float, float, float], image: str
) -> tuple[float, float, float, float]:
    """Narrow or widen the box to the image's proportions (same height, same centre)."""
    from PIL import Image

    with Image.open(image) as img:
        width, height = img.size
    x, y, w, h = rect_mm
    fitted = h * width / height
    return x + (w - fitted) / 2, y, fitted, h


def _seal_box(
    reader: Any, opts: PdfDocOptions, source: str
) -> tuple[int, tuple[int, int, int, int]]:
    """Page and box of the organisation's seal: its real size, over the left third
    of the leader's signature image, centred on it vertically (Decree 30/2020)."""
    signatures = reader.embedded_regular_signatures
    if not signatures:
        raise DocumentError(
            "no earlier signature: the organisation signs only documents already "
            "signed by the person with authority (Decree 30/2020, Art. 32.2)",
            subject=source,
        )
    for earlier in signatures:
        problem = _integrity_problem(earlier)
        if problem is not None:
            raise DocumentError(
                f"the earlier signature in field {earlier.field_name} no longer validates "
                f"({problem}); not signing over it",
                subject=source,
            )
    leader = None
    for earlier in reversed(signatures):
        widget = _widget(earlier.sig_field)
        if opts.over_field is not None:
            if earlier.field_name == opts.over_field:
                leader = (earlier, widget)
                break
        elif widget is not None and _has_image(widget):
            leader = (earlier, widget)
            break
    if leader is None or leader[1] is None:
        wanted = (
            f"field {opts.over_field}" if opts.over_field else "an earlier signature with an image"
        )
        raise DocumentError(f"no {wanted} to place the seal over", subject=source)
    _, widget = leader
    x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise DocumentError("the leader's signature has no visible box", subject=source)
    diameter = float(opts.seal_mm or 0) * MM
    right = x1 + (x2 - x1) / 3
    bottom = (y1 + y2) / 2 - diameter / 2
    index = _widget_page(reader, widget)
    if index is None:
        raise DocumentError("cannot find the page of the leader's signature", subject=source)
    return index, (round(right - diameter), round(bottom), round(right), round(bottom + diameter))


def _integrity_problem(sig: Any) -> str | None:
    """Why an earlier signature fails (digest, signature value, coverage, later
    changes), or None when it still validates; trust is not judged here."""
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.generic_cms import validate_sig_integrity
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    try:
        sig.compute_integrity_info()
        summary = sig.summarise_integrity_info()
        content_type = sig.signed_data["encap_content_info"]["content_type"].native
        intact, valid = validate_sig_integrity(
            sig.signer_info, sig.signer_cert, content_type, sig.compute_digest()
        )
    except (SignatureValidationError, ValueError, KeyError, TypeError) as exc:
        return f"cannot be checked: {str(exc)[:120]}"
    if not intact:
        return "the signed bytes changed"
    if not valid:
        return "the signature value does not match"
    if summary.get("coverage") not in (
        SignatureCoverageLevel.ENTIRE_REVISION,
        SignatureCoverageLevel.ENTIRE_FILE,
    ):
        return "it does not cover its revision"
    if summary.get("docmdp_ok") is False:
        return "later changes are not allowed by its certification"
    level = summary.get("modification_level")
    if level is not None and level > ModificationLevel.FORM_FILLING:
        return "the document was changed after it (annotations or content)"
    return None


def _widget(field: Any) -> Any:
    if "/Rect" in field:
        return field
    kids = field.get("/Kids")
    return kids[0].get_object() if kids else None


def _has_image(widget: Any) -> bool:
    """Whether the widget's normal appearance draws an image (searched through forms)."""
    try:
        ap = widget["/AP"]["/N"].get_object()
    except (KeyError, AttributeError):
        return False
    return _stream_has_image(ap, 0)


def _stream_has_image(stream: Any, depth: int) -> bool:
    if depth > 4:
        return False
    try:
        xobjects = stream["/Resources"]["/XObject"]
    except (KeyError, TypeError):
        return False
    for ref in xobjects.values():
        obj = ref.get_object()
        subtype = obj.get("/Subtype")
        if subtype == "/Image" or (subtype == "/Form" and _stream_has_image(obj, depth + 1)):
            return True
    return False


def _widget_page(reader: Any, widget: Any) -> int | None:
    count = int(reader.root["/Pages"]["/Count"])
    for index in range(count):
        page = reader.find_page_for_modification(index)[0].get_object()
        for annot in page.get("/Annots", ()):
            if annot.get_object() is widget:
                return index
    return None


def scan_warnings(path: Path) -> list[str]:
    """What falls short of a scan for an electronic copy (Decree 30/2020):
    PDF 1.4 or later, colour, at least 200 dpi (page 1's images, by pdfimages)."""
    import shutil
    import subprocess

    problems: list[str] = []
    with path.open("rb") as fh:
        head = fh.read(16)
    try:
        version = float(head[5:8].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        version = 0.0
    if version < 1.4:
        problems.append(f"PDF version {head[5:8].decode('ascii', 'replace')} is below 1.4")
    tool = shutil.which("pdfimages")
    if tool is None:
        return [*problems, "cannot check colour and resolution (pdfimages not installed)"]
    proc = subprocess.run(  # noqa: S603 (fixed tool, file path argument)
        [tool, "-list", "-f", "1", "-l", "1", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    rows = [line.split() for line in proc.stdout.splitlines()[2:] if line.split()]
    images = [r for r in rows if len(r) >= 14 and r[2] == "image"]
    if not images:
        return [*problems, "page 1 has no scanned image"]
    if all(r[6] == "1" for r in images):
        problems.append("the scan is not in colour")
    resolutions = [
        min(int(r[12]), int(r[13])) for r in images if r[12].isdigit() and r[13].isdigit()
    ]
    ppi = min(resolutions, default=0)
    if resolutions and ppi < 200:
        problems.append(f"the scan is {ppi} dpi (under 200)")
    return problems


def _free_field_name(writer: Any) -> str:
    from pyhanko.sign.fields import enumerate_sig_fields

    taken = {name for name, _, _ in enumerate_sig_fields(writer, filled_status=None)}
    n = 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


def worker_finish(prepared: Prepared, signature: bytes) -> Finished:
    """Stage 3 (worker): CMS (+ time-stamp), DSS, document time-stamp, fsync, check."""
    try:
        return _finish(prepared, signature)
    except OSError as exc:
        raise OutputError(
            f"cannot write the signed copy ({exc.strerror or exc})", subject=prepared.temp
        ) from None


def _finish(prepared: Prepared, signature: bytes) -> Finished:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    st = _state(prepared.config)
    cfg = st.config
    level = prepared.level
    token = None
    if level != "B-B":
        if cfg.tsa is None:
            raise UsageError(f"{level} needs a time-stamping authority (--tsa URL)")
        token = request_timestamp(cfg.tsa, signature)
    cms_der = st.template.signed_data(prepared.to_sign, signature, timestamp_token=token)
    with open(prepared.temp, "r+b") as out:
        digest = PreparedByteRangeDigest(
            document_digest=prepared.document_digest,
            reserved_region_start=prepared.reserved_start,
            reserved_region_end=prepared.reserved_end,
        )
        if 2 * len(cms_der) > prepared.reserved_end - prepared.reserved_start - 2:
            raise DocumentError(
                f"signature container ({len(cms_der)} bytes) larger than reserved",
                subject=prepared.temp,
            )
        written = digest.fill_reserved_region(out, cms_der)
        if level in ("B-LT", "B-LTA"):
            out.seek(0)
            w = IncrementalPdfFileWriter(out, strict=False)
            DocumentSecurityStore.supply_dss_in_writer(
                w,
                written,
                certs=_certs(cfg.ltv_certs),
                ocsps=_ocsps(cfg.ltv_ocsps),
                crls=_crls(cfg.ltv_crls),
            )
            w.write_in_place()
        if level == "B-LTA":
            _document_timestamp(out, st)
        out.flush()
        os.fsync(out.fileno())
        check_signature(out, prepared, signature, cfg)
        after = sha256_file(out)
        size_after = os.fstat(out.fileno()).st_size
    return Finished(
        index=prepared.index,
        temp=prepared.temp,
        sha256_after=after,
        signing_time=prepared.signing_time,
        level=level,
        size_after=size_after,
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


class _TimeStamper:
    """Adapter giving pyHanko's document time-stamper our RFC 3161 client."""

    @staticmethod
    def build(spec: TsaSpec) -> Any:
        from asn1crypto import tsp
        from pyhanko.sign.timestamps.api import TimeStamper

        from signkit.timestamps import post_timestamp_query

        class Stamper(TimeStamper):
            async def async_request_tsa_response(self, req: Any) -> Any:
                return tsp.TimeStampResp.load(post_timestamp_query(spec, req.dump()))

        return Stamper(include_nonce=spec.nonce)


def _document_timestamp(out: IO[bytes], st: _Worker) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper

    cfg = st.config
    assert cfg.tsa is not None  # noqa: S101 - checked by the caller's level test
    out.seek(0)
    w = IncrementalPdfFileWriter(out, strict=False)
    stamper = PdfTimeStamper(_TimeStamper.build(cfg.tsa))
    st.loop.run_until_complete(
        stamper.async_timestamp_pdf(
            w, cfg.digest_algorithm, bytes_reserved=DOC_TIMESTAMP_RESERVE, in_place=True
        )
    )


def check_signature(
    out: IO[bytes], prepared: Prepared, signature: bytes, cfg: PdfBatchConfig
) -> None:
    """Re-read the written file: the signed byte ranges still hash to what we
    signed, and the signature value verifies with the signer's public key."""
    from cryptography.exceptions import InvalidSignature

    h = hashlib.new(cfg.digest_algorithm)
    out.seek(0)
    remaining = prepared.reserved_start
    while remaining:
        chunk = out.read(min(_CHUNK, remaining))
        if not chunk:
            break
        h.update(chunk)
        remaining -= len(chunk)
    out.seek(prepared.reserved_end)
    remaining = prepared.signed_length - prepared.reserved_end
    while remaining > 0:
        chunk = out.read(min(_CHUNK, remaining))
        if not chunk:
            break
        h.update(chunk)
        remaining -= len(chunk)
    if h.digest() != prepared.document_digest:
        raise DocumentError(
            "the written file does not hash to the signed digest", subject=prepared.temp
        )
    try:
        verify_raw_signature(
            cfg.signer_der, prepared.to_sign, signature, cfg.scheme, cfg.digest_algorithm
        )
    except InvalidSignature:
        raise DocumentError(
            "the token's signature does not verify with the signer certificate",
            subject=prepared.temp,
        ) from None


def verify_raw_signature(
    cert_der: bytes, data: bytes, signature: bytes, scheme: str, digest_algorithm: str
) -> None:
    """Verify ``signature`` over ``data``; raises cryptography's InvalidSignature."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    algo = {
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
        "sha3_256": hashes.SHA3_256(),
        "sha3_384": hashes.SHA3_384(),
        "sha3_512": hashes.SHA3_512(),
    }[digest_algorithm]
    key = x509.load_der_x509_certificate(cert_der).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algo))
    elif isinstance(key, rsa.RSAPublicKey):
        pad = (
            padding.PSS(padding.MGF1(algo), algo.digest_size)
            if scheme == "pss"
            else padding.PKCS1v15()
        )
        key.verify(signature, data, pad, algo)
    else:
        raise DocumentError(f"unsupported key type {type(key).__name__}")


def signed_by(path: Path, signer_sha256: str, field: str | None = None) -> bool:
    """Resume check: the signature in ``field`` (default: the last one) of ``path``
    is intact (its byte ranges hash to the signed digest and its value verifies
    with the certificate) and made with this certificate.

    Per field, so that a second signature by the same certificate in another
    field (a clerk's number stamp, then the seal) is not taken as done."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        with path.open("rb") as fh:
            reader = PdfFileReader(fh, strict=False)
            sigs = reader.embedded_regular_signatures
            if field is not None:
                sigs = [s for s in sigs if s.field_name == field]
            if not sigs:
                return False
            sig = sigs[-1]
            cert_der = sig.signer_cert.dump()
            if hashlib.sha256(cert_der).hexdigest() != signer_sha256:
                return False
            signer_info = sig.signer_info
            expected = None
            for attr in signer_info["signed_attrs"]:
                if attr["type"].native == "message_digest":
                    expected = attr["values"][0].native
            if expected is None or sig.compute_digest() != expected:
                return False
            return _signer_info_verifies(signer_info, cert_der)
    except Exception:
        return False


def _signer_info_verifies(signer_info: Any, cert_der: bytes) -> bool:
    """The SignerInfo's signature value over its signed attributes verifies."""
    from cryptography.exceptions import InvalidSignature

    # Signed as a SET OF (RFC 5652 5.4), stored with the [0] IMPLICIT tag.
    signed = b"\x31" + signer_info["signed_attrs"].dump()[1:]
    algo = signer_info["signature_algorithm"]
    name = algo.signature_algo
    scheme = {"rsassa_pkcs1v15": "pkcs1v15", "rsassa_pss": "pss", "ecdsa": "ecdsa"}.get(name)
    if scheme is None:
        return False
    digest = signer_info["digest_algorithm"]["algorithm"].native
    value = signer_info["signature"].native
    try:
        verify_raw_signature(cert_der, signed, value, scheme, digest)
    except (InvalidSignature, KeyError, ValueError):
        return False
    return True
