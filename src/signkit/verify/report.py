"""Verification reports for people: one page per document, in Vietnamese or
English, as a PDF (fonts embedded, PDF/A-2b) or one self-contained HTML file.

The report is built from the verdicts (the same facts as --json): verdict
in words and colour, signer and organisation, the signing and time-stamp
times in the display time zone, the chain, the revocation evidence and its
source, the level, what each signature covers and what changed after
signing, and the signed pages with every signature field outlined and
numbered as the text numbers the signatures.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from signkit.errors import ConfigError, OutputError

FORMATS = ("pdf", "html")

COLOURS = {"PASSED": "#1a7f37", "INDETERMINATE": "#a15c00", "FAILED": "#c62828"}

_LABELS: dict[str, dict[str, str]] = {
    "title": {"en": "Signature verification report", "vi": "Báo cáo kiểm tra chữ ký số"},
    "PASSED": {"en": "VALID", "vi": "HỢP LỆ"},
    "INDETERMINATE": {"en": "CANNOT BE CONFIRMED", "vi": "CHƯA XÁC ĐỊNH ĐƯỢC"},
    "FAILED": {"en": "INVALID", "vi": "KHÔNG HỢP LỆ"},
    "UNREADABLE": {"en": "UNREADABLE", "vi": "KHÔNG ĐỌC ĐƯỢC"},
    "INTERNAL ERROR": {"en": "INTERNAL ERROR", "vi": "LỖI NỘI BỘ"},
    "document": {"en": "Document", "vi": "Tài liệu"},
    "verified_at": {"en": "Verified at", "vi": "Thời điểm kiểm tra"},
    "signatures": {"en": "Signatures", "vi": "Số chữ ký"},
    "signature": {"en": "Signature", "vi": "Chữ ký"},
    "timestamp_kind": {"en": "Document time-stamp", "vi": "Dấu thời gian tài liệu"},
    "signer": {"en": "Signer", "vi": "Người ký"},
    "organisation": {"en": "Organisation", "vi": "Tổ chức"},
    "signing_time": {"en": "Signing time (claimed)", "vi": "Thời điểm ký (người ký khai)"},
    "timestamp": {"en": "Time-stamp", "vi": "Dấu thời gian"},
    "archive": {"en": "Archive time-stamps", "vi": "Dấu thời gian lưu trữ"},
    "level": {"en": "Level", "vi": "Mức chữ ký"},
    "chain": {"en": "Certificate chain", "vi": "Chuỗi chứng thư số"},
    "anchor_yes": {"en": "ends at a trusted anchor", "vi": "kết thúc ở chứng thư gốc tin cậy"},
    "anchor_no": {
        "en": "does not end at a trusted anchor",
        "vi": "không kết thúc ở chứng thư gốc tin cậy",
    },
    "revocation": {"en": "Revocation status", "vi": "Tình trạng thu hồi"},
    "good": {"en": "not revoked", "vi": "chưa bị thu hồi"},
    "revoked": {"en": "REVOKED", "vi": "ĐÃ BỊ THU HỒI"},
    "unknown": {"en": "unknown", "vi": "không xác định"},
    "not-checked": {"en": "not checked", "vi": "không kiểm tra"},
    "embedded": {
        "en": "evidence embedded in the document (OCSP/CRL)",
        "vi": "bằng chứng gắn trong tài liệu (OCSP/CRL)",
    },
    "fetched": {
        "en": "evidence fetched from the issuer (OCSP/CRL)",
        "vi": "bằng chứng lấy từ tổ chức cấp (OCSP/CRL)",
    },
    "covers": {"en": "Covers", "vi": "Phạm vi được ký"},
    "entire-file": {"en": "the whole file", "vi": "toàn bộ tệp"},
    "entire-revision": {
        "en": "the whole document as signed (later updates follow)",
        "vi": "toàn bộ tài liệu lúc ký (có cập nhật sau đó)",
    },
    "partial": {"en": "part of the file", "vi": "một phần tệp"},
    "attached-content": {"en": "the content it carries", "vi": "nội dung đi kèm chữ ký"},
    "changes": {"en": "Changes after signing", "vi": "Thay đổi sau khi ký"},
    "none": {"en": "none", "vi": "không có"},
    "lta-updates": {
        "en": "validation data and time-stamps only",
        "vi": "chỉ thêm dữ liệu kiểm tra và dấu thời gian",
    },
    "form-filling": {"en": "form filling", "vi": "điền biểu mẫu"},
    "annotations": {"en": "annotations", "vi": "chú thích"},
    "other": {"en": "other changes", "vi": "thay đổi khác"},
    "why": {"en": "Assessment", "vi": "Nhận định"},
    "warnings": {"en": "Notes", "vi": "Lưu ý"},
    "pages": {"en": "Signed pages", "vi": "Các trang có chữ ký"},
    "page": {"en": "page", "vi": "trang"},
    "invisible": {"en": "invisible signature", "vi": "chữ ký không hiển thị"},
    "none_found": {"en": "No signature found.", "vi": "Không tìm thấy chữ ký nào."},
    "summary": {
        "en": "{passed} valid, {indeterminate} cannot be confirmed, {failed} invalid (of {total})",
        "vi": "{passed} hợp lệ, {indeterminate} chưa xác định được, {failed} không hợp lệ "
        "(trên tổng số {total})",
    },
    "zone": {"en": "times shown in", "vi": "giờ hiển thị theo múi"},
}


def label(key: str, lang: str) -> str:
    """A report word in ``lang`` (the key itself when unknown)."""
    entry = _LABELS.get(key)
    return entry.get(lang, entry["en"]) if entry is not None else key


@contextmanager
def _language(lang: str) -> Iterator[Callable[[str], str]]:
    """The catalogue's translation of English messages into ``lang``."""
    from signkit import i18n

    before = i18n.language()
    i18n.set_language(lang)
    try:
        yield i18n.t
    finally:
        i18n.set_language(before)


@dataclass
class SignatureView:
    """One signature as a person reads it."""

    number: int
    title: str
    verdict: str
    colour: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class DocumentView:
    """One document as a person reads it."""

    input: str
    verdict: str
    colour: str
    sentence: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    signatures: list[SignatureView] = field(default_factory=list)
    pages: list[Any] = field(default_factory=list)
    """verify.thumbnails.PageThumbnail of the signed pages."""
    judged: bool = True
    """False when the document got no verdict (unreadable, or it met a bug)."""


def _name_parts(subject: str | None) -> tuple[str, str]:
    """(common name, organisation) from an RFC 4514 subject."""
    if not subject:
        return "", ""
    parts: dict[str, str] = {}
    for item in subject.replace("\\,", "\x00").split(","):
        key, _, value = item.partition("=")
        parts.setdefault(key.strip().upper(), value.replace("\x00", ",").strip())
    return parts.get("CN", subject), parts.get("O", "")


def _when(value: str | None, zone: ZoneInfo, lang: str) -> str:
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(value).astimezone(zone)
    except ValueError:
        return value
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    if lang == "vi":
        return moment.strftime("%d/%m/%Y %H:%M:%S ") + offset
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + offset


def _coverage(value: str | None, lang: str) -> str:
    if not value:
        return "—"
    if value.startswith("file:"):
        return ("tệp " if lang == "vi" else "the file ") + value[5:]
    return label(value, lang)


def build(report: Any, *, lang: str, zone: str) -> list[DocumentView]:
    """The documents of a verification run as people read them."""
    tz = ZoneInfo(zone)
    views = []
    with _language(lang) as t:
        for doc in report.documents:
            views.append(_document(doc, report, t, lang, tz))
    return views


def _document(doc: Any, report: Any, t: Callable[[str], str], lang: str, tz: ZoneInfo) -> Any:
    v = doc.verdict_json()
    if v is None:
        return DocumentView(
            input=doc.input,
            verdict=label("INTERNAL ERROR" if doc.met_a_bug else "UNREADABLE", lang),
            colour=COLOURS["FAILED"],
            sentence=t(doc.error_message or doc.reason or ""),
            judged=False,
        )
    finished = report.finished or report.started
    view = DocumentView(
        input=doc.input,
        verdict=label(v["indication"], lang),
        colour=COLOURS[v["indication"]],
        sentence=t(v["sentence"]),
        rows=[
            (label("document", lang), doc.input),
            ("SHA-256", v.get("sha256") or "—"),
            (label("verified_at", lang), _when(finished.isoformat(), tz, lang)),
            (label("signatures", lang), str(len(v["signatures"]))),
        ],
        pages=list(report.thumbnails.get(doc.input, [])),
    )
    for i, s in enumerate(v["signatures"]):
        view.signatures.append(_signature(i + 1, s, t, lang, tz))
    return view


def _signature(
    number: int, s: dict[str, Any], t: Callable[[str], str], lang: str, tz: ZoneInfo
) -> SignatureView:
    kind = s.get("kind", "signature")
    title = label("timestamp_kind" if kind == "document-timestamp" else "signature", lang)
    name, org = _name_parts(s.get("signer_subject"))
    chain = list(s.get("chain") or [])
    if not chain:
        chain = [c for c in (s.get("signer_subject"), s.get("signer_issuer")) if c]
    anchor = label("anchor_yes" if s.get("trusted") else "anchor_no", lang)
    revocation = label(s.get("revocation") or "not-checked", lang)
    if s.get("revocation_source"):
        revocation += " — " + label(s["revocation_source"], lang)
    changes = s.get("modification_level")
    change_text = label(changes, lang) if changes else "—"
    if s.get("changes"):
        change_text += ": " + "; ".join(t(c) for c in s["changes"])
    rows = [
        (label("signer", lang), name or "—"),
        (label("organisation", lang), org or "—"),
        (label("signing_time", lang), _when(s.get("claimed_signing_time"), tz, lang)),
        (label("timestamp", lang), _when(s.get("timestamp_time"), tz, lang)),
    ]
    archive = s.get("archive_timestamp_times") or []
    if archive:
        rows.append((label("archive", lang), ", ".join(_when(a, tz, lang) for a in archive)))
    rows += [
        (label("level", lang), s.get("level") or "—"),
        (label("chain", lang), " → ".join(_name_parts(c)[0] for c in chain) + f" ({anchor})"),
        (label("revocation", lang), revocation),
        (label("covers", lang), _coverage(s.get("coverage"), lang)),
        (label("changes", lang), change_text),
    ]
    sub = "" if s["sub_indication"] == "OK" else f" ({s['sub_indication']})"
    rows.append((label("why", lang), t(s["sentence"]) + sub))
    return SignatureView(
        number=number,
        title=f"{title} {number}" + (f" — {s['name']}" if s.get("name") else ""),
        verdict=label(s["indication"], lang),
        colour=COLOURS[s["indication"]],
        rows=rows,
        warnings=[t(w) for w in s.get("warnings") or []],
    )


def summary(report: Any, lang: str) -> str:
    """One line: how many documents passed, could not be confirmed, failed."""
    counts = report.verdicts()
    failed = counts["FAILED"] + sum(1 for d in report.documents if d.verdict is None)
    return label("summary", lang).format(
        passed=counts["PASSED"],
        indeterminate=counts["INDETERMINATE"],
        failed=failed,
        total=len(report.documents),
    )


# ---------------------------------------------------------------- HTML


_CSS = """
@font-face { font-family: 'SkSans'; src: url(data:font/ttf;base64,{regular}) format('truetype'); }
@font-face { font-family: 'SkSans'; font-weight: bold;
  src: url(data:font/ttf;base64,{bold}) format('truetype'); }
body { font-family: 'SkSans', sans-serif; color: #1d1d1f; margin: 24px; font-size: 14px; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
.doc { border: 1px solid #d0d7de; border-radius: 6px; padding: 16px; margin: 16px 0;
  page-break-after: always; }
.verdict { display: inline-block; color: #fff; font-weight: bold; padding: 4px 10px;
  border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0; }
td { padding: 2px 10px 2px 0; vertical-align: top; }
td.k { color: #57606a; white-space: nowrap; }
.sig { border-left: 4px solid; padding-left: 10px; margin: 12px 0; }
.pages img { border: 1px solid #d0d7de; margin: 4px 8px 4px 0; }
.note { color: #57606a; }
"""


def write_html(views: list[DocumentView], path: Path, *, lang: str, zone: str, line: str) -> None:
    """One self-contained HTML file (fonts and page images inlined)."""
    regular, bold = _font_files()
    text = "".join(_all_text(views)) + line + label("title", lang)
    css = _CSS.replace("{regular}", _subset_b64(regular, text)).replace(
        "{bold}", _subset_b64(bold, text)
    )
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        f"<title>{html.escape(label('title', lang))}</title><style>{css}</style></head><body>",
        f"<h1>{html.escape(label('title', lang))}</h1>",
        f'<p class="note">{html.escape(line)} · {label("zone", lang)} {html.escape(zone)}</p>',
    ]
    for view in views:
        out.append(_html_document(view, lang))
    out.append("</body></html>")
    _write(path, "\n".join(out).encode("utf-8"))


def _html_document(view: DocumentView, lang: str) -> str:
    e = html.escape
    parts = [
        '<section class="doc">',
        f"<h2>{e(Path(view.input).name)}</h2>",
        f'<span class="verdict" style="background:{view.colour}">{e(view.verdict)}</span>',
        f"<p>{e(view.sentence)}</p>",
        _html_rows(view.rows),
    ]
    if not view.signatures and view.judged:
        parts.append(f"<p>{e(label('none_found', lang))}</p>")
    for sig in view.signatures:
        parts.append(f'<div class="sig" style="border-color:{sig.colour}">')
        parts.append(
            f'<h3>{e(sig.title)} <span class="verdict" style="background:{sig.colour}">'
            f"{e(sig.verdict)}</span></h3>"
        )
        parts.append(_html_rows(sig.rows))
        if sig.warnings:
            items = "".join(f"<li>{e(w)}</li>" for w in sig.warnings)
            parts.append(f"<p>{e(label('warnings', lang))}:</p><ul>{items}</ul>")
        parts.append("</div>")
    if view.pages:
        parts.append(f"<h3>{e(label('pages', lang))}</h3><div class='pages'>")
        for page in view.pages:
            data = base64.b64encode(page.png).decode("ascii")
            caption = f"{label('page', lang)} {page.page}"
            if page.invisible:
                caption += " · " + ", ".join(
                    f"{n}: {label('invisible', lang)}" for n, _ in page.invisible
                )
            parts.append(
                f'<figure><img alt="{e(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def _html_rows(rows: list[tuple[str, str]]) -> str:
    e = html.escape
    body = "".join(f'<tr><td class="k">{e(k)}</td><td>{e(v)}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"


def _all_text(views: list[DocumentView]) -> Iterator[str]:
    for view in views:
        yield view.input + view.verdict + view.sentence
        for k, v in view.rows:
            yield k + v
        for sig in view.signatures:
            yield sig.title + sig.verdict + "".join(k + v for k, v in sig.rows)
            yield "".join(sig.warnings)
    for key in _LABELS:
        yield "".join(_LABELS[key].values())
    yield "0123456789·—→:;,.()-+/ "


# ---------------------------------------------------------------- fonts and files

_SANS = (
    (
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    ),
    (
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
        "/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf",
    ),
)


def _font_files() -> tuple[str, str]:
    """A sans-serif family with Vietnamese coverage (regular, bold)."""
    for regular, bold in _SANS:
        if Path(regular).is_file() and Path(bold).is_file():
            return regular, bold
    raise ConfigError(
        "no font with Vietnamese letters for the report",
        subject="fonts",
        hint="install fonts-dejavu-core (or fonts-liberation2)",
    )


def _subset_b64(font_path: str, text: str) -> str:
    """The font cut down to the characters the report uses, base64."""
    import io

    from fontTools import subset

    options = subset.Options()
    options.name_IDs = ["*"]
    options.drop_tables += ["FFTM"]
    options.notdef_outline = True
    font = subset.load_font(font_path, options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=text)
    subsetter.subset(font)
    buffer = io.BytesIO()
    subset.save_font(font, buffer, options)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _write(path: Path, data: bytes) -> None:
    from signkit.fsio import atomic_write

    try:
        atomic_write(path, data)
    except OSError as exc:
        raise OutputError(
            f"cannot write the report ({exc.strerror or exc})", subject=str(path)
        ) from None


def write_reports(
    report: Any,
    *,
    fmt: str,
    lang: str,
    zone: str,
    path: Path | None = None,
    directory: Path | None = None,
) -> list[Path]:
    """Write the people's report: one file at ``path`` (a page per document),
    or one file per document in ``directory``. Returns the files written."""
    views = build(report, lang=lang, zone=zone)
    line = summary(report, lang)
    writer = write_html if fmt == "html" else _pdf_writer()
    written = []
    if directory is not None:
        names: set[str] = set()
        for view in views:
            name = f"{Path(view.input).name}.report.{fmt}"
            while name in names:
                name = "_" + name
            names.add(name)
            target = directory / name
            writer([view], target, lang=lang, zone=zone, line=view.verdict)
            written.append(target)
    if path is not None:
        writer(views, path, lang=lang, zone=zone, line=line)
        written.append(path)
    return written


def _pdf_writer() -> Callable[..., None]:
    from signkit.verify.report_pdf import write_pdf

    return write_pdf
