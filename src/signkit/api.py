"""signkit as a library: the jobs and reports the command line uses, for a
Python program (an office's document system) that signs or verifies without a
subprocess.

    from signkit import api

    report = api.sign_pdfs(
        ["inbox/qd-12.pdf"],
        output_dir="signed",
        module="/usr/lib/libeTPkcs11.so",
        token_label="VNPT-CA",
        pin=secret_store.get("token-pin"),
        level="B-T",
        tsa="http://tsa.example.vn",
        trust=["/etc/signkit/roots"],
        reason="Phê duyệt",
    )
    for doc in report.documents:
        print(doc.status, doc.input, doc.output or doc.error_message)

Every function returns the report object the CLI prints (``--json`` is its
``to_json()``). Per-document failures are in the report; a run-level failure
(a wrong PIN, a missing token, an unreachable TSA) raises a ``SignkitError``
whose ``exit_code`` is the CLI's. A PIN given here is held like one from
``SIGNKIT_PIN``: never logged, never in an error, never handed to a child.
Nothing here prompts: a PIN is given (``pin`` or ``pin_file``) or the token
has a PIN pad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from signkit.errors import PinUnavailableError
from signkit.jobs.report import BatchReport, DocumentResult

__all__ = ["check_certificates", "extend", "sign_cms", "sign_pdfs", "sign_xml", "verify"]

PathLike = str | Path


class _NoPerson:
    """The PIN I/O of a program: nobody to prompt."""

    def interactive(self) -> bool:
        return False

    def prompt_pin(self, prompt: str) -> str:
        raise PinUnavailableError("no PIN given", hint="pass pin= or pin_file=")

    def confirm(self, question: str) -> bool:
        return False

    def read_stdin_pin(self) -> str:
        raise PinUnavailableError("no PIN given", hint="pass pin= or pin_file=")


class _Callback:
    def __init__(self, on_document: Callable[[DocumentResult], None] | None) -> None:
        self.on_document = on_document

    def document_done(self, result: DocumentResult) -> None:
        if self.on_document is not None:
            self.on_document(result)


def _token(token: Mapping[str, Any], pin: str | None, pin_file: PathLike | None) -> Any:
    from signkit.tokens.secret import Pin
    from signkit.tokens.selection import token_spec

    return token_spec(
        **token,
        pin_file=Path(pin_file) if pin_file is not None else None,
        env_pin=Pin(pin) if pin else None,
    )


_TOKEN_KEYS = (
    "module",
    "token_label",
    "token_serial",
    "slot",
    "key_label",
    "key_id",
    "cert_fingerprint",
    "key_uri",
)


def _audit_path(audit_log: PathLike | bool) -> Path | None:
    from signkit.audit.log import default_audit_path

    if audit_log is True:
        return default_audit_path()
    return None if audit_log is False else Path(audit_log)


def _path(value: PathLike | None) -> Path | None:
    return Path(value) if value is not None else None


def _sign(fmt: Any, command: str, given: Mapping[str, Any]) -> BatchReport:
    """Run the signing job; ``given`` holds the public function's parameters
    (sign_pdfs and sign_xml share them but for the format's own)."""
    from signkit.jobs.engine import EngineSpec
    from signkit.jobs.outputs import OutputSpec
    from signkit.jobs.signing import SignJobSpec, sign_documents
    from signkit.pki.anchors import TrustSpec, resolve_anchor
    from signkit.pki.timestamps import TsaSpec
    from signkit.tokens.guard import PinGuard, default_state_dir

    report_path = _path(given["report"])
    spec = SignJobSpec(
        format=fmt,
        inputs=tuple(str(i) for i in given["inputs"]),
        recursive=given["recursive"],
        manifest=_path(given["manifest"]),
        outputs=OutputSpec(
            output=_path(given["output"]),
            output_dir=_path(given["output_dir"]),
            suffix=given["suffix"],
            in_place=given["in_place"],
        ),
        engine=EngineSpec(
            fail_fast=given["fail_fast"], force=given["force"], resign=given["resign"]
        ),
        token=_token({k: given[k] for k in _TOKEN_KEYS}, given["pin"], given["pin_file"]),
        trust=TrustSpec(
            anchors=tuple(resolve_anchor(str(t)) for t in given["trust"]),
            revocation=given["revocation"],
        ),
        tsa=TsaSpec(url=given["tsa"]) if given["tsa"] else None,
        digest_algorithm=given["digest"],
        pss=given["pss"],
        timezone=given["timezone"],
        jobs=given["jobs"],
        report_path=report_path,
        audit_path=_audit_path(given["audit_log"]),
        command_line=("api", command),
    )
    report = BatchReport(command=command)
    try:
        sign_documents(
            spec,
            io=_NoPerson(),
            guard=PinGuard(default_state_dir()),
            warn=report.warnings.append,
            events=_Callback(given["on_document"]),
            report=report,
        )
    finally:
        if report_path is not None and report.documents:
            report.write(report_path).close()
    return report


def sign_pdfs(
    inputs: Iterable[PathLike],
    *,
    output: PathLike | None = None,
    output_dir: PathLike | None = None,
    suffix: str = "_signed",
    in_place: bool = False,
    recursive: bool = False,
    manifest: PathLike | None = None,
    module: str | None = None,
    token_label: str | None = None,
    token_serial: str | None = None,
    slot: int | None = None,
    key_label: str | None = None,
    key_id: str | None = None,
    cert_fingerprint: str | None = None,
    key_uri: str | None = None,
    pin: str | None = None,
    pin_file: PathLike | None = None,
    level: str = "B-B",
    tsa: str | None = None,
    trust: Sequence[PathLike] = (),
    revocation: str = "soft",
    digest: str = "sha256",
    pss: bool = False,
    timezone: str = "Asia/Ho_Chi_Minh",
    password: str | None = None,
    jobs: int = 0,
    force: bool = False,
    resign: bool = False,
    fail_fast: bool = False,
    audit_log: PathLike | bool = True,
    report: PathLike | None = None,
    on_document: Callable[[DocumentResult], None] | None = None,
    **signature: Any,
) -> BatchReport:
    """Sign PDFs (PAdES) in one token session, as `signkit sign pdf` does.

    ``signature`` takes the per-signature options by their field names
    (``reason``, ``location``, ``rect``, ``anchor_text``, ``image``,
    ``preset``, ``doc_number``, … — see formats/pdf/options.PdfDocOptions).
    ``audit_log``: True for the default log, False for none, or a path.
    """
    from signkit.formats.pdf import PdfDocOptions, PdfFormat

    fmt = PdfFormat(defaults=PdfDocOptions(level=level, **signature), password=password)
    return _sign(fmt, "sign pdf", locals())


def sign_xml(
    inputs: Iterable[PathLike],
    *,
    output: PathLike | None = None,
    output_dir: PathLike | None = None,
    suffix: str = "_signed",
    in_place: bool = False,
    recursive: bool = False,
    manifest: PathLike | None = None,
    module: str | None = None,
    token_label: str | None = None,
    token_serial: str | None = None,
    slot: int | None = None,
    key_label: str | None = None,
    key_id: str | None = None,
    cert_fingerprint: str | None = None,
    key_uri: str | None = None,
    pin: str | None = None,
    pin_file: PathLike | None = None,
    preset: str | None = None,
    config: PathLike | None = None,
    tsa: str | None = None,
    trust: Sequence[PathLike] = (),
    revocation: str = "soft",
    digest: str = "sha256",
    pss: bool = False,
    timezone: str = "Asia/Ho_Chi_Minh",
    jobs: int = 0,
    force: bool = False,
    resign: bool = False,
    fail_fast: bool = False,
    audit_log: PathLike | bool = True,
    report: PathLike | None = None,
    on_document: Callable[[DocumentResult], None] | None = None,
    **signature: Any,
) -> BatchReport:
    """Sign XML documents (XMLDSig, XAdES), as `signkit sign xml` does.

    ``preset`` names a built-in preset (``vn-einvoice``, ``vn-tax-declaration``)
    or a ``[xml-presets.NAME]`` table of the configuration; ``signature``
    takes the options by their field names (``level``, ``form``,
    ``reference``, ``signature_parent``, ``c14n``, ``signer_role``, …),
    which win over the preset.
    """
    from signkit.config import load_config
    from signkit.formats.xml_format import XmlFormat, build_options

    given = {"id_attributes": None, **signature}
    if isinstance(given.get("id_attributes"), (list, tuple)):
        given["id_attributes"] = ("Id", *given["id_attributes"])
    fmt = XmlFormat(
        defaults=build_options(
            preset=preset,
            config=load_config(Path(config) if config is not None else None),
            given=given,
        )
    )
    return _sign(fmt, "sign xml", locals())


def sign_cms(
    inputs: Iterable[PathLike],
    *,
    output: PathLike | None = None,
    output_dir: PathLike | None = None,
    recursive: bool = False,
    manifest: PathLike | None = None,
    module: str | None = None,
    token_label: str | None = None,
    token_serial: str | None = None,
    slot: int | None = None,
    key_label: str | None = None,
    key_id: str | None = None,
    cert_fingerprint: str | None = None,
    key_uri: str | None = None,
    pin: str | None = None,
    pin_file: PathLike | None = None,
    level: str = "B-B",
    attached: bool = False,
    pem: bool = False,
    tsa: str | None = None,
    trust: Sequence[PathLike] = (),
    revocation: str = "soft",
    digest: str = "sha256",
    pss: bool = False,
    timezone: str = "Asia/Ho_Chi_Minh",
    jobs: int = 0,
    force: bool = False,
    resign: bool = False,
    fail_fast: bool = False,
    audit_log: PathLike | bool = True,
    report: PathLike | None = None,
    on_document: Callable[[DocumentResult], None] | None = None,
) -> BatchReport:
    """Sign files of any type (CAdES), as `signkit sign cms` does: a.docx ->
    a.docx.p7s next to it (or in ``output_dir``), a.docx.p7m with ``attached``."""
    from signkit.formats.cms.options import CmsDocOptions
    from signkit.formats.cms.plugin import CmsFormat

    fmt = CmsFormat(defaults=CmsDocOptions(level=level, attached=attached, pem=pem))
    suffix, in_place = "", False  # a signature is a file of its own, named after its input
    return _sign(fmt, "sign cms", {**locals(), "suffix": suffix, "in_place": in_place})


def extend(
    inputs: Iterable[PathLike],
    *,
    level: str = "B-LTA",
    renew_within: timedelta | None = None,
    tsa: str | None = None,
    trust: Sequence[PathLike] = (),
    revocation: str = "soft",
    output: PathLike | None = None,
    output_dir: PathLike | None = None,
    recursive: bool = False,
    manifest: PathLike | None = None,
    jobs: int = 0,
    force: bool = False,
    fail_fast: bool = False,
    audit_log: PathLike | bool = True,
    report: PathLike | None = None,
    password: str | None = None,
) -> BatchReport:
    """Raise existing signatures (PDF, XML, CMS) to ``level`` without re-signing,
    as `signkit extend` does; ``renew_within``: archive renewal, a new archive
    time-stamp for B-LTA documents whose newest time-stamp is due. In place
    unless ``output`` or ``output_dir`` is given; no token is needed.
    ``password`` opens encrypted PDFs (as ``--password-file``)."""
    from signkit.jobs.engine import EngineSpec
    from signkit.jobs.extend_job import ExtendJobSpec, extend_documents, plan
    from signkit.jobs.outputs import OutputSpec
    from signkit.pki.anchors import TrustSpec, resolve_anchor
    from signkit.pki.timestamps import TsaSpec

    report_path = _path(report)
    spec = ExtendJobSpec(
        inputs=tuple(str(i) for i in inputs),
        recursive=recursive,
        manifest=_path(manifest),
        level=level,
        renew_within=renew_within,
        outputs=OutputSpec(
            output=_path(output),
            output_dir=_path(output_dir),
            in_place=output is None and output_dir is None,
            suffix="",
        ),
        engine=EngineSpec(fail_fast=fail_fast, force=force),
        trust=TrustSpec(
            anchors=tuple(resolve_anchor(str(t)) for t in trust),
            revocation=revocation,  # type: ignore[arg-type]
        ),
        tsa=TsaSpec(url=tsa) if tsa else None,
        pdf_password=password,
        jobs=jobs,
        report_path=report_path,
        audit_path=_audit_path(audit_log),
        command_line=("api", "extend"),
    )
    result = BatchReport(command="extend")
    try:
        extend_documents(
            spec,
            warn=result.warnings.append,
            events=_Callback(None),
            report=result,
            docs=plan(spec),
        )
    finally:
        if report_path is not None and result.documents:
            result.write(report_path).close()
    return result


def verify(
    inputs: Iterable[PathLike],
    *,
    trust: Sequence[PathLike] = (),
    trust_system: bool = False,
    offline: bool = False,
    revocation: str = "soft",
    at: datetime | None = None,
    allow_weak: bool = False,
    recursive: bool = False,
    jobs: int = 0,
    audit_log: PathLike | bool = True,
    on_document: Callable[[DocumentResult], None] | None = None,
    password: str | None = None,
) -> Any:
    """Verify signed documents, as `signkit verify` does; the VerifyReport's
    documents carry each verdict (``doc.verdict``), ``exit_code()`` the CLI's.
    ``password`` opens the PDFs that need one (as ``--password-file``)."""
    from signkit.jobs.verify_job import VerifyJobSpec, VerifyReport, verify_documents
    from signkit.pki.anchors import anchors_from, resolve_anchor
    from signkit.verify.policy import VerifyPolicy

    anchors = anchors_from(tuple(resolve_anchor(str(t)) for t in trust), system=trust_system)
    spec = VerifyJobSpec(
        inputs=tuple(str(i) for i in inputs),
        recursive=recursive,
        policy=VerifyPolicy(
            anchors=anchors,
            revocation=revocation,  # type: ignore[arg-type]
            offline=offline,
            at=at,
            allow_weak=allow_weak,
            password=password,
        ),
        jobs=jobs,
        audit_path=_audit_path(audit_log),
        command_line=("api", "verify"),
    )
    report = VerifyReport(command="verify")
    verify_documents(
        spec, events=_Callback(on_document), report=report, warn=report.warnings.append
    )
    return report


def check_certificates(
    *,
    files: Sequence[PathLike] = (),
    documents: Sequence[PathLike] = (),
    module: str | None = None,
    token_label: str | None = None,
    token_serial: str | None = None,
    slot: int | None = None,
    trust: Sequence[PathLike] = (),
    trust_system: bool = False,
    offline: bool = False,
    revocation: str = "soft",
    warn_days: int = 30,
) -> list[Any]:
    """Check certificates as `signkit cert check` does: certificate files,
    the signers of documents, or (given a token) the token's certificates,
    read without a login. One CertStatus each (``state``, ``days_left``, …)."""
    from signkit.pki.anchors import anchors_from, resolve_anchor
    from signkit.tokens.selection import token_spec
    from signkit.verify import certcheck
    from signkit.verify.policy import VerifyPolicy

    policy = VerifyPolicy(
        anchors=anchors_from(tuple(resolve_anchor(str(t)) for t in trust), system=trust_system),
        revocation=revocation,  # type: ignore[arg-type]
        offline=offline,
    )
    sources = certcheck.certificates_from_files([Path(f) for f in files])
    sources += certcheck.certificates_from_documents([Path(d) for d in documents])
    if module is not None or token_label is not None or token_serial is not None:
        spec = token_spec(
            module=module, token_label=token_label, token_serial=token_serial, slot=slot
        )
        sources += certcheck.certificates_from_token(spec)
    return [
        certcheck.check_certificate(der, others, policy, source=source, warn_days=warn_days)
        for source, der, others in sources
    ]
