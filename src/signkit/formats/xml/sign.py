"""XMLDSig and XAdES (B-B, B-T, B-LT) signing, split into the engine's stages.

``prepare`` (worker): parse the document, splice a Signature template into
the ORIGINAL bytes, parse that result and compute the reference digests and
the canonical SignedInfo on it, with the reference processing ``verify``
uses. ``sign`` (main process, the token): sign the canonical SignedInfo.
``finish`` (worker): put the value (and for B-T the SignatureTimeStamp) into
the bytes, write the temp file (the engine fsyncs it), read it back, and check it as a
verifier would: a fresh parse of the written bytes, every Reference digest
recomputed, the SignatureValue, the SigningCertificateV2 and the time-stamp
imprint (``check_output``, which resume uses too).

The document is never re-serialised: every byte outside the inserted
Signature (and the wrappers a preset creates for it) stays as it was.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from signkit.errors import DocumentError, InputFormatError, OutputError, SignkitError, UsageError
from signkit.formats.finished import Finished
from signkit.formats.plugin import OutputState
from signkit.formats.xml import c14n, xades
from signkit.formats.xml.batch import Prepared, PrepareItem, XmlBatchConfig
from signkit.formats.xml.c14n import quote_attribute
from signkit.formats.xml.core import check_signature, ds, signatures_of
from signkit.formats.xml.layout import (
    ReferenceSpec,
    SignatureSpec,
    find_parent,
    reference_fragment,
    signature_template,
    tax_code_warning,
)
from signkit.formats.xml.options import C14N, TIMESTAMPED
from signkit.formats.xml.parse import MAX_BYTES, XML_NS, XmlDocument, parse, require_utf8
from signkit.formats.xml.references import Context, processed, to_octets
from signkit.formats.xml.splice import root_bytes, splice
from signkit.fsio import open_regular, read_within
from signkit.pki.timestamps import request_timestamp

if TYPE_CHECKING:
    from lxml.etree import _Element

_XML = "{" + XML_NS + "}"
# A new temp file only: never an existing file, never through a symlink.
_CREATE_TEMP = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def worker_warmup() -> None:
    """Import the XML stack ahead of the first document, and the path
    validation the signer check runs in this worker before the batch starts
    (the PDF stack brings its own); frozen, as the PDF stack is (see
    signkit.startup). The worker does this while the main process starts."""
    from signkit.startup import imports_without_gc

    with imports_without_gc():
        import lxml.etree  # noqa: F401
        import pyhanko_certvalidator  # noqa: F401

        from signkit.formats.xml import core  # noqa: F401
        from signkit.pki import certs, chain  # noqa: F401  (certs: cryptography's x509)


def worker_prepare(item: PrepareItem) -> Prepared:
    """Stage 1 (worker): lay out the Signature and compute what the token signs."""
    try:
        with os.fdopen(open_regular(item.input), "rb") as fh:
            data = read_within(fh, MAX_BYTES)
    except OSError as exc:
        raise InputFormatError(f"cannot read ({exc.strerror})", subject=item.input) from None
    return prepare_bytes(item, data)


@functools.lru_cache(maxsize=8)
def _directory(name: str) -> Path:
    return Path(name)


def _base(output: str) -> Path:
    """The directory of ``output`` (one Path per directory: a batch shares a few)."""
    return _directory(os.path.dirname(os.path.abspath(output)))


def prepare_bytes(item: PrepareItem, data: bytes) -> Prepared:
    """``worker_prepare`` on bytes already read."""
    cfg = item.config
    opts = item.options
    source = item.input
    before = hashlib.sha256(data).hexdigest()
    require_utf8(data, source)
    doc = parse(data, source)
    if doc.dtd_defaults:
        element, attribute = doc.dtd_defaults[0]
        raise InputFormatError(
            f"the DOCTYPE gives the attribute {attribute} of {element} a default value: "
            "verifiers that do not read the DOCTYPE (xmlsec1 among them) would compute "
            "another digest",
            subject=source,
            hint="write the attribute out in the document, remove its default from the "
            "DOCTYPE, and sign again",
        )
    root = doc.root
    local = root.tag.rpartition("}")[2]
    for path in (opts.parent_path, opts.reference_path):
        if path and local != path[0]:
            expected = path[0]
            raise InputFormatError(
                f"the root element is {local}, not {expected} (a document of another layout?)",
                subject=source,
            )
    namespace = root.tag.rpartition("}")[0].lstrip("{") or "(none)"
    required = opts.root_namespace
    if required is not None and namespace != required:
        raise InputFormatError(
            f"the root element {local} is in the namespace {namespace}, "
            f"not {required} (a document of another layout?)",
            subject=source,
        )
    warning = tax_code_warning(root, opts, cfg.tax_code, source)
    now = datetime.now(ZoneInfo(cfg.timezone)).replace(microsecond=0)
    nonce = secrets.token_hex(8)
    sig_id = opts.signature_id or f"sig-{nonce}"
    id_names = tuple(dict.fromkeys((*opts.id_attributes, "Id")))
    ids = doc.ids(id_names) if opts.signature_id or nonce.encode() in data else {}
    for own in (sig_id, sig_id + "-value", sig_id + "-signedprops", "SigningTime-" + sig_id):
        if own in ids:
            raise InputFormatError(
                f'the document already has an element with Id "{own}"',
                subject=source,
                hint="choose another --signature-id",
            )
    ids = doc.ids(id_names) if opts.reference or opts.reference_path else ids
    xades_level = opts.level != "plain"
    data_ref_id = sig_id + "-ref0" if xades_level else None
    references: list[ReferenceSpec] = []
    enveloping_marker = None
    detached: str | None = None
    if opts.form == "detached":
        rel = os.path.relpath(os.path.abspath(source), _base(item.output))
        detached = "/".join(Path(rel).parts)
        fragment = reference_fragment(doc, opts, ids)
        # An element of the data document is canonicalised where it stands there.
        transforms = ("c14n",) if fragment else ()
        references.append(ReferenceSpec(detached + fragment, None, transforms, data_ref_id))
    elif opts.form == "enveloping":
        enveloping_marker = f"signkit-{nonce}-data"
        references.append(ReferenceSpec(f"#{sig_id}-object", None, ("c14n",), data_ref_id))
    else:
        uri = reference_fragment(doc, opts, ids)
        references.append(
            ReferenceSpec(uri, None, opts.transforms or ("enveloped", "c14n"), data_ref_id)
        )
    if opts.signing_time_object:
        references.append(ReferenceSpec(f"#SigningTime-{sig_id}", None, (), None))
    if xades_level:
        references.append(
            ReferenceSpec(f"#{sig_id}-signedprops", xades.SIGNED_PROPERTIES_TYPE, ("c14n",), None)
        )
    template = signature_template(
        SignatureSpec(
            opts=opts,
            signature_id=sig_id,
            nonce=nonce,
            references=tuple(references),
            scheme=cfg.scheme,
            digest_algorithm=cfg.digest_algorithm,
            certificate_der=cfg.signer_der,
            chain_der=cfg.chain_der,
            signing_time_local=now.replace(tzinfo=None).isoformat(),
            signing_time=now.isoformat(),
            enveloping_marker=enveloping_marker,
        )
    ).encode("utf-8")
    missing: list[str] = []
    if opts.form == "enveloped":
        parent, missing = find_parent(doc, opts)
        _keep_earlier_signatures(doc, parent, id_names)
        out = splice(doc, data, parent, missing, template)
    else:
        if opts.form == "enveloping":
            _keep_earlier_signatures(doc, doc.root, id_names)
        out = b'<?xml version="1.0" encoding="UTF-8"?>\n' + (
            template.replace(enveloping_marker.encode(), root_bytes(doc, data))
            if enveloping_marker is not None
            else template
        )
    # Below, the reference processing and canonicaliser verify uses: the digests
    # and the canonical SignedInfo are those any verifier computes, on the parse
    # of the output; finish checks them again on the bytes written. An
    # enveloped signature that created no wrapper element leaves the rest of
    # the document as it was: its data reference is processed on the input's
    # parse (the same node-set, without the signature to take out), and the
    # Signature is parsed alone under an element that carries what its place
    # gives it (the namespaces in scope, the ancestors' xml:* attributes).
    base = _base(item.output)
    if opts.form == "enveloped" and not missing:
        sig_doc = parse(_in_place(parent, template), source)
        data_doc = doc
    else:
        sig_doc = parse(out, source)
        data_doc = sig_doc
    signature = _find_signature(sig_doc, sig_id)
    signed_info = signature.find(ds("SignedInfo"))
    ctx = Context(doc=sig_doc, signature=signature, base=base, id_attributes=id_names)
    if detached is not None:
        ctx.provide(detached, data)
    data_ctx = ctx
    if data_doc is not sig_doc:
        data_ctx = Context(doc=data_doc, signature=signature, base=base, id_attributes=id_names)
    for i, ref in enumerate(signed_info.iterchildren(ds("Reference"))):
        octets = to_octets(processed(ref, data_ctx if i == 0 else ctx))
        value = _b64(hashlib.new(cfg.digest_algorithm, octets).digest())
        ref.find(ds("DigestValue")).text = value
        marker = f">signkit-{nonce}-d{i}<".encode()
        if out.count(marker) != 1:
            raise DocumentError("the document contains signkit's placeholder text", subject=source)
        out = out.replace(marker, f">{value}<".encode())
    method = c14n.method_of(C14N[opts.c14n])
    assert method is not None  # noqa: S101 - the options allow only known methods
    to_sign = c14n.canonicalize_element(signed_info, method)
    value_marker = f"signkit-{nonce}-value".encode()
    sv_head = sv_tail = b""
    if opts.level in TIMESTAMPED:
        sv = c14n.canonicalize_element(signature.find(ds("SignatureValue")), method)
        sv_head, _, sv_tail = sv.partition(value_marker)
    head, found, rest = out.partition(b">" + value_marker + b"<")
    if not found or value_marker in rest:
        raise DocumentError("the document contains signkit's placeholder text", subject=source)
    head += b">"
    rest = b"<" + rest
    # Unsigned properties go at the end of our QualifyingProperties: its first
    # closing tag after the SignatureValue (document content may follow).
    cut = rest.find(b"</xades:QualifyingProperties>") if xades_level else len(rest)
    return Prepared(
        config=cfg,
        index=item.index,
        input=source,
        temp=item.temp,
        to_sign=to_sign,
        head=head,
        middle=rest[:cut],
        tail=rest[cut:],
        value_c14n=(sv_head, sv_tail),
        c14n_uri=C14N[opts.c14n],
        signature_id=sig_id,
        ds_prefix=opts.ds_prefix,
        id_attributes=opts.id_attributes,
        sha256_before=before,
        signing_time=now.isoformat(),
        level=opts.level,
        warnings=(warning,) if warning else (),
        size_before=len(data),
    )


def _keep_earlier_signatures(doc: XmlDocument, parent: _Element, id_names: Sequence[str]) -> None:
    """Refuse to put a Signature under ``parent`` where an earlier signature of
    the document covers it: its digest would change and it would no longer
    verify (its enveloped-signature transform takes out only itself)."""
    earlier = signatures_of(doc)
    if not earlier:
        return
    # Held in a list: lxml returns one proxy per element only while it lives.
    inside = [parent, *parent.iterancestors()]
    for signature in earlier:
        signed_info = signature.find(ds("SignedInfo"))
        for ref in () if signed_info is None else signed_info.iterchildren(ds("Reference")):
            uri = ref.get("URI")
            if uri in ("", "#xpointer(/)"):
                covered = [doc.root]
            elif uri is not None and uri.startswith("#") and "(" not in uri:
                covered = doc.ids(id_names).get(uri[1:], [])
            else:
                continue
            if any(element is place for element in covered for place in inside):
                what = "the whole document" if covered[0] is doc.root else f"{uri}"
                name = f" ({signature.get('Id')})" if signature.get("Id") else ""
                raise DocumentError(
                    f"an earlier signature{name} covers {what}, "
                    "where this one would go: adding it would break that signature",
                    subject=doc.source,
                    hint="sign it detached (--form detached), or put this signature outside "
                    "what the earlier one covers (--signature-parent)",
                )


def _in_place(parent: _Element, template: bytes) -> bytes:
    """``template`` inside an element that gives it what ``parent`` gives it in
    the document: every namespace in scope and the nearest xml:* attributes."""
    attrs = [
        f" xmlns={quote_attribute(uri)}"
        if prefix is None
        else f" xmlns:{prefix}={quote_attribute(uri)}"
        for prefix, uri in parent.nsmap.items()
    ]
    inherited: dict[str, str] = {}
    for element in (parent, *parent.iterancestors()):
        for name, value in element.attrib.items():
            if name.startswith(_XML) and name not in inherited:
                inherited[name] = value
    attrs += [f" xml:{name[len(_XML) :]}={quote_attribute(v)}" for name, v in inherited.items()]
    return f"<signkit-context{''.join(attrs)}>".encode() + template + b"</signkit-context>"


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _find_signature(doc: XmlDocument, sig_id: str) -> _Element:
    hits = [el for el in signatures_of(doc) if el.get("Id") == sig_id]
    if len(hits) != 1:
        raise DocumentError(f"{len(hits)} signatures with Id {sig_id}", subject=doc.source)
    return hits[0]


def signature_value(signature: bytes, cfg: XmlBatchConfig) -> bytes:
    """The token's signature as XMLDSig wants it (ECDSA: r||s, not DER)."""
    if cfg.key_type == "EC":
        from signkit.tokens.signer import ecdsa_der_to_raw

        return ecdsa_der_to_raw(signature, (cfg.key_size + 7) // 8)
    return signature


def worker_finish(prepared: Prepared, signature: bytes) -> Finished:
    """Stage 3 (worker): signature value, time-stamp (B-T), write, check (the
    engine fsyncs the temp file before the rename)."""
    cfg = prepared.config
    value = _b64(signature_value(signature, cfg)).encode("ascii")
    unsigned = b""
    if prepared.level in TIMESTAMPED:
        if cfg.tsa is None:
            raise UsageError(f"{prepared.level} needs a time-stamping authority (--tsa URL)")
        sv_head, sv_tail = prepared.value_c14n
        token = request_timestamp(cfg.tsa, sv_head + value + sv_tail)
        lt = prepared.level == "B-LT"
        unsigned = xades.unsigned_properties_xml(
            signature_id=prepared.signature_id,
            ds_prefix=prepared.ds_prefix,
            c14n_uri=prepared.c14n_uri,
            tokens=[token.dump()],
            certs=cfg.ltv_certs if lt else (),
            ocsps=cfg.ltv_ocsps if lt else (),
            crls=cfg.ltv_crls if lt else (),
        )
    out = prepared.head + value + prepared.middle + unsigned + prepared.tail
    try:
        # 0o666: the umask decides, as for any file the user creates; a new
        # file only, never through a symlink.
        fd = os.open(prepared.temp, _CREATE_TEMP, 0o666)
        with os.fdopen(fd, "r+b") as fh:
            fh.write(out)
            fh.flush()
            fh.seek(0)
            written = fh.read()
    except OSError as exc:
        raise OutputError(
            f"cannot write the signed copy ({exc.strerror or exc})", subject=prepared.temp
        ) from None
    if written != out:
        raise DocumentError("the written file differs from the signed bytes", subject=prepared.temp)
    check = check_output(
        written,
        prepared.temp,
        base=_base(prepared.temp),
        id_attributes=prepared.id_attributes,
        signature_id=prepared.signature_id,
        signer_sha256=hashlib.sha256(cfg.signer_der).hexdigest(),
    )
    reason = check.problem
    if reason is not None:
        # The temp file is removed: the document's own name says which one it was.
        raise DocumentError(f"the signed output does not verify ({reason})", subject=prepared.input)
    return Finished(
        index=prepared.index,
        temp=prepared.temp,
        sha256_after=hashlib.sha256(out).hexdigest(),
        signing_time=prepared.signing_time,
        level=prepared.level,
        warnings=prepared.warnings,
        size_after=len(out),
        synced=False,  # the engine syncs it with others before the rename
    )


# ---------------------------------------------------------------- checking outputs


@dataclass(frozen=True)
class OutputCheck:
    """What a verifier's check of a signed output found for one signer."""

    problem: str | None
    """None when a signature by the signer verifies in full; else why not."""
    data_changed: bool = False
    """The signer's signature holds but for a detached reference's data, which changed."""


def check_output(
    data: bytes,
    source: str,
    *,
    base: Path,
    id_attributes: Sequence[str],
    signer_sha256: str,
    signature_id: str | None = None,
) -> OutputCheck:
    """Check ``data`` as ``verify`` does, from a fresh parse: a signature (the one
    with ``signature_id``, else any) whose value verifies with the signer's
    certificate, every SignedInfo reference recomputed, and for XAdES the
    SigningCertificate and every time-stamp's imprint."""
    try:
        doc = parse(data, source)
    except SignkitError as exc:
        return OutputCheck(exc.message)
    problems = []
    changed = False
    for signature in signatures_of(doc):
        if signature_id is not None and signature.get("Id") != signature_id:
            continue
        # One named signature: the parse is ours alone, checked once.
        problem, detached_only = _check_one(
            doc, signature, base, id_attributes, signer_sha256, disposable=signature_id is not None
        )
        if problem is None:
            return OutputCheck(None)
        problems.append(problem)
        changed = changed or detached_only
    if not problems:
        return OutputCheck("no signature by this signer")
    return OutputCheck(problems[-1], data_changed=changed)


def _check_one(
    doc: XmlDocument,
    signature: _Element,
    base: Path,
    id_attributes: Sequence[str],
    signer_sha256: str,
    *,
    disposable: bool = False,
) -> tuple[str | None, bool]:
    """(why the signature does not hold, or None; whether only detached data changed).

    With ``disposable``, nothing of ``doc`` is read after: the time-stamps are
    checked first, the core validation may take the signature out of the tree."""
    props = xades.signed_properties(signature)
    if props is not None:
        ctx = Context(doc=doc, signature=signature, base=base, id_attributes=tuple(id_attributes))
        for stamp in xades.stamps(signature, ctx):
            if stamp.message is None or not all(
                xades.covers(t, stamp.message) for t in stamp.tokens
            ):
                return f"the XAdES {stamp.kind} does not cover the signature", False
    try:
        core = check_signature(
            doc, signature, base=base, id_attributes=id_attributes, disposable=disposable
        )
    except SignkitError as exc:
        return exc.message, False
    cert = core.signer.certificate if core.signer is not None else None
    if cert is None or hashlib.sha256(cert).hexdigest() != signer_sha256:
        return "the signature value does not verify with the signer certificate", False
    bad = [r for r in core.references if not r.matches]
    if bad:
        external = all(
            r.problem is None and r.target is not None and r.target.external is not None
            for r in bad
        )
        first = bad[0]
        reason = first.problem.message if first.problem else "does not match its digest"
        return f"reference {first.uri or '(document)'}: {reason}", external
    if props is not None:
        digests = xades.signing_certificates(props)
        if not digests or not xades.names_certificate(digests, cert):
            return "the XAdES SigningCertificateV2 does not name the signer", False
    return None, False


def output_state(
    output: Path,
    source: Path,
    signer_sha256: str,
    *,
    form: str,
    in_place: bool,
    id_attributes: Sequence[str] = ("Id",),
) -> OutputState:
    """Resume: what the existing ``output`` of ``source`` is.

    DONE only when a signature by this certificate verifies completely (the
    check of ``finish``), and is over the current input: the output is the
    input with the Signature spliced in (enveloped), holds the input's root
    element (enveloping), or references the input as it is now (detached).
    STALE when the signature is ours and intact but over an earlier input.
    Anything that does not verify is FOREIGN: never skipped as done.
    """
    try:
        with output.open("rb") as fh:
            data = read_within(fh, MAX_BYTES)
    except OSError:
        return OutputState.FOREIGN
    check = check_output(
        data,
        str(output),
        base=output.resolve().parent,
        id_attributes=id_attributes,
        signer_sha256=signer_sha256,
    )
    if check.problem is not None:
        return (
            OutputState.STALE if form == "detached" and check.data_changed else OutputState.FOREIGN
        )
    if in_place or form == "detached":
        return OutputState.DONE
    try:
        with source.open("rb") as fh:
            original = read_within(fh, MAX_BYTES)
    except OSError:
        return OutputState.STALE
    if form == "enveloping":
        try:
            root = root_bytes(parse(original, str(source)), original)
        except SignkitError:
            return OutputState.STALE
        return OutputState.DONE if root in data else OutputState.STALE
    return OutputState.DONE if _spliced_from(original, data) else OutputState.STALE


def _spliced_from(original: bytes, output: bytes) -> bool:
    """``output`` is ``original`` with one block inserted (an empty parent
    element's ``/>`` opened into ``>…</name>`` counts as an insertion)."""
    if len(output) < len(original):
        return False
    prefix = _common_length(original, output)
    rest = len(original) - prefix
    suffix = _common_length(original[::-1][:rest], output[::-1][: len(output) - prefix])
    return original[prefix : len(original) - suffix] in (b"", b"/")


def _common_length(a: bytes, b: bytes) -> int:
    """Length of the common prefix of ``a`` and ``b`` (binary search on slices)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
