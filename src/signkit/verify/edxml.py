"""Verdicts on edXML packages (QCVN 102:2016): the envelope and what it carries.

A package gets one verdict line per signature it holds: the sender's XML
signature in edXMLHeader, then every signature of every attached PDF or
XML document, each judged by the rules a document on its own would be
(``verify.pdf``, ``verify.xml``), named by its attachment. Where the
manifest and the attachments disagree, or an attachment cannot be decoded
or carries no signature, that is a line of its own. The package's verdict
is the worst of them. The header's Code and PromulgationInfo are shown on
each attachment's first line, so a clerk sees which organisation signed the
decision the header announces.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from signkit.errors import InputError, SignkitError
from signkit.formats.edxml import (
    Attachment,
    Budget,
    HeaderFacts,
    Package,
    decode,
    decoded,
    looks_like_edxml,
    manifest_problems,
    read_package,
)
from signkit.formats.xml.core import signatures_of
from signkit.formats.xml.parse import MAX_BYTES, parse
from signkit.fsio import read_within
from signkit.verify.policy import VerifyPolicy
from signkit.verify.verdict import (
    DocumentVerdict,
    Indication,
    SignatureVerdict,
    SubIndication,
    make_verdict,
)

if TYPE_CHECKING:
    from lxml.etree import _Element

    from signkit.formats.xml.parse import XmlDocument

WHOLE_DOCUMENT = ""
CMS_EXTENSIONS = (".p7s", ".p7m")
CMS_TYPES = frozenset(
    {
        "application/pkcs7-signature",
        "application/pkcs7-mime",
        "application/x-pkcs7-signature",
        "application/x-pkcs7-mime",
    }
)
_NO_ENVELOPE_SIGNATURE = "the envelope carries no XML signature in edXMLHeader"
_NO_SIGNATURE = "the attachment carries no signature"
_NOT_XMLDSIG = (
    "the Signature in edXMLHeader is not in the XMLDSig namespace "
    "(http://www.w3.org/2000/09/xmldsig#): it is not an XML signature"
)


def verify_edxml(path: Path, policy: VerifyPolicy) -> DocumentVerdict:
    """Verify an edXML package: its envelope signature, its manifest and every
    attachment's signatures (decoded in memory, written nowhere)."""
    try:
        with path.open("rb") as fh:
            data = read_within(fh, MAX_BYTES)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None
    return verify_package(parse(data, str(path)), data, policy)


def verify_package(doc: XmlDocument, data: bytes, policy: VerifyPolicy) -> DocumentVerdict:
    """``verify_edxml`` on a document already parsed (``data``: its bytes)."""
    source = doc.source
    package = read_package(doc)
    verdicts = _envelope(package, policy)
    problems = manifest_problems(package)
    if problems:
        verdicts.append(
            make_verdict(
                0,
                Indication.FAILED,
                SubIndication.FORMAT_FAILURE,
                name="edXMLManifest",
                detail="; ".join(problems),
                warnings=problems,
            )
        )
    budget = Budget()
    for attachment, content in decoded(package, budget):
        if isinstance(content, SignkitError):
            verdicts.append(_line(attachment, SubIndication.FORMAT_FAILURE, content.message))
            continue
        verdicts += _attachment(attachment, content, package, budget, policy)
    numbered = [replace(v, index=i) for i, v in enumerate(verdicts)]
    return DocumentVerdict.of(source, "edxml", numbered, hashlib.sha256(data).hexdigest())


def _envelope(package: Package, policy: VerifyPolicy) -> list[SignatureVerdict]:
    """The sender's signature(s): the ds:Signature children of edXMLHeader."""
    from signkit.verify.xml import signature_verdicts

    doc = package.doc
    header = package.header_element
    everywhere = signatures_of(doc)
    own = [s for s in everywhere if s.getparent() is header]
    if not own:
        # The SDK sample's <Signature> declares no namespace: it is an edXML
        # element, not XMLDSig; say so rather than only "no signature".
        stray = any(
            isinstance(c.tag, str) and str(c.tag).rpartition("}")[2] == "Signature" for c in header
        )
        reason = _NOT_XMLDSIG if stray else _NO_ENVELOPE_SIGNATURE
        return [
            make_verdict(
                0,
                Indication.FAILED,
                SubIndication.FORMAT_FAILURE,
                name="edXMLHeader",
                detail=reason,
                warnings=[reason],
            )
        ]
    others = [s for s in everywhere if s not in own and not _inside(s, own)]
    verdicts = signature_verdicts(doc, own, policy, None)
    out = []
    for signature, verdict in zip(own, verdicts, strict=True):
        warnings = list(verdict.warnings)
        if not _covers_whole_document(signature):
            warnings.append(
                "the envelope signature does not cover the whole package: "
                "what it leaves out (the attachments) is not the sender's"
            )
        if others:
            warnings.append(
                f"{len(others)} other XML signature(s) in the package outside edXMLHeader: "
                "not the sender's, not judged"
            )
        name = "edXMLHeader" + (f" {verdict.name}" if verdict.name else "")
        out.append(replace(verdict, name=name, warnings=warnings))
    return out


def _inside(signature: _Element, others: list[_Element]) -> bool:
    return any(a in others for a in signature.iterancestors())


def _covers_whole_document(signature: _Element) -> bool:
    from signkit.formats.xml.algorithms import DS

    return any(
        ref.get("URI") == WHOLE_DOCUMENT
        for ref in signature.iterfind(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    )


def _line(attachment: Attachment, sub: SubIndication, detail: str) -> SignatureVerdict:
    indication = (
        Indication.FAILED if sub is SubIndication.FORMAT_FAILURE else Indication.INDETERMINATE
    )
    # the table shows warnings, not details: the reason goes in both
    return make_verdict(
        0,
        indication,
        sub,
        name=attachment.label,
        attachment=attachment.label,
        detail=detail,
        warnings=[detail],
    )


def is_cms(attachment: Attachment, head: bytes) -> bool:
    """A CMS signature (.p7s, .p7m): by name, by content type or by its first bytes."""
    from signkit.formats.cms.der import OID_SIGNED_DATA

    if attachment.name.lower().endswith(CMS_EXTENSIONS):
        return True
    if attachment.content_type.lower().split(";")[0].strip() in CMS_TYPES:
        return True
    stripped = head.lstrip()
    if stripped.startswith((b"-----BEGIN PKCS7", b"-----BEGIN CMS")):
        return True
    return head[:1] == b"\x30" and OID_SIGNED_DATA in head[:32]


def _key(name: str) -> str:
    return unicodedata.normalize("NFC", name).casefold()


def _signed_data(
    attachment: Attachment, package: Package, budget: Budget
) -> tuple[str, bytes] | None:
    """The attachment a detached signature ``a.docx.p7s`` signs: ``a.docx`` in the
    same package (decoded again, within the package's budget)."""
    stem, dot, ext = attachment.name.rpartition(".")
    if not dot or not stem or ext.lower() != "p7s":
        return None
    for other in package.attachments:
        if other is not attachment and _key(other.name) == _key(stem):
            return other.name, decode(other, budget, package.doc.source)
    return None


def _signature_of(attachment: Attachment, package: Package) -> Attachment | None:
    """The detached signature ``NAME.p7s`` in the package that signs ``attachment``."""
    if not attachment.name:
        return None
    wanted = _key(attachment.name + ".p7s")
    return next((a for a in package.attachments if _key(a.name) == wanted), None)


def _attachment(
    attachment: Attachment,
    content: bytes,
    package: Package,
    budget: Budget,
    policy: VerifyPolicy,
) -> list[SignatureVerdict]:
    """The verdicts of one attachment's signatures (a line of its own when it has none)."""
    from signkit.verify.pdf import verify_pdf_data
    from signkit.verify.xml import verify_xml_data

    header = package.header
    inner = f"{package.doc.source}: {attachment.label}"
    head = content[:1024]
    try:
        if is_cms(attachment, head):
            from signkit.verify.cms import verify_cms_data

            detached = _signed_data(attachment, package, budget)
            verdict = verify_cms_data(content, inner, policy, detached)
        elif head.lstrip()[:5] == b"%PDF-":
            verdict = verify_pdf_data(content, inner, policy)
        elif head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            if looks_like_edxml(head):
                # Packages inside packages are not opened: one level, bounded.
                return [
                    _line(
                        attachment,
                        SubIndication.GENERIC,
                        "an edXML package inside the package is not opened",
                    )
                ]
            verdict = verify_xml_data(content, inner, policy, base=None)
        else:
            if _signature_of(attachment, package) is not None:
                # judged on the line of the detached signature that signs it
                return []
            kind = attachment.content_type or "unknown type"
            return [
                _line(
                    attachment,
                    SubIndication.SIGNED_DATA_NOT_FOUND,
                    f"neither PDF, XML nor CMS ({kind}): its signature, if any, is not checked",
                )
            ]
    except SignkitError as exc:
        return [_line(attachment, SubIndication.FORMAT_FAILURE, exc.message)]
    if not verdict.signatures:
        return [
            make_verdict(
                0,
                Indication.FAILED,
                SubIndication.FORMAT_FAILURE,
                name=attachment.label,
                attachment=attachment.label,
                detail=_NO_SIGNATURE,
                warnings=[_NO_SIGNATURE, header.summary()],
            )
        ]
    out = []
    for i, sig in enumerate(verdict.signatures):
        name = f"{attachment.label}: {sig.name}" if sig.name else attachment.label
        warnings = [header.summary(), *sig.warnings] if i == 0 else list(sig.warnings)
        other = _other_organisation(header, sig.signer_subject)
        if other is not None:
            warnings.append(other)
        out.append(replace(sig, name=name, attachment=attachment.label, warnings=warnings))
    return out


def _fold(text: str) -> str:
    import unicodedata

    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def _other_organisation(header: HeaderFacts, subject: str | None) -> str | None:
    """A warning when the signer certificate's organisation is not the sender the
    header names (From/OrganName): a decision can claim to come from anyone."""
    if not subject or not header.organ_name:
        return None
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError:
        return None
    orgs = [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if not orgs or any(_fold(header.organ_name) in _fold(o) for o in orgs):
        return None
    return (
        f"the header names the sender {header.organ_name}; the signer's certificate names {orgs[0]}"
    )
