"""The option groups commands share, each declared once.

A command takes a group as one typed parameter (``token: TokenOptions``);
``framework.grouped`` spreads its fields into the command's options. The
field name is the option's parameter name (and a profile key); the help is
the option's documentation. Groups are built once per run and never
compared or printed: their dataclasses generate no __eq__ or __repr__, each
of which would cost every command's start-up a little.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from .complete import token_labels, trust_bundles
from .profiles import apply_config_option, config_option, profile_option

if TYPE_CHECKING:
    from signkit.audit.log import AuditSpec
    from signkit.jobs.inputs import Shard
    from signkit.workers import Limits

Revocation = Literal["hard", "soft", "off"]
Digest = Literal["sha256", "sha384", "sha512"]
Module = Annotated[
    str | None,
    typer.Option(
        "--module",
        envvar="SIGNKIT_MODULE",
        metavar="PATH",
        show_envvar=False,
        help="PKCS#11 module (.so) of the token [env SIGNKIT_MODULE]; "
        "default: discover (p11-kit registrations, known install paths).",
    ),
]

PdfPasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file",
        metavar="FILE",
        dir_okay=False,
        help="Password of encrypted PDFs [or env SIGNKIT_PDF_PASSWORD].",
    ),
]


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class OutputOptions:
    """--json, -v/--verbose, -q/--quiet, --debug: taken by every command."""

    json_output: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable report on stdout.")
    ] = False
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="More detail (in the listings and on stderr).")
    ] = False
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Only errors and the run's summary.")
    ] = False
    debug: Annotated[
        bool, typer.Option("--debug", help="Show a traceback on errors (never shows a PIN).")
    ] = False


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ConfigOptions:
    """--config and --profile: taken by every command."""

    config_path: Annotated[
        Path | None, config_option(is_eager=True, callback=apply_config_option)
    ] = None
    profile: Annotated[str | None, profile_option(is_eager=True, callback=apply_config_option)] = (
        None
    )


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TokenOptions:
    """Which token (and, through a PKCS#11 URI, which key)."""

    module: Module = None
    token_label: Annotated[
        str | None,
        typer.Option(
            "--token-label", metavar="LABEL", help="Token label.", autocompletion=token_labels
        ),
    ] = None
    token_serial: Annotated[
        str | None, typer.Option("--token-serial", metavar="SERIAL", help="Token serial.")
    ] = None
    slot: Annotated[int | None, typer.Option("--slot", metavar="ID", help="PKCS#11 slot id.")] = (
        None
    )
    key_uri: Annotated[
        str | None,
        typer.Option(
            "--key",
            metavar="URI",
            help="RFC 7512 URI, e.g. 'pkcs11:token=MyToken;object=MyKey'.",
        ),
    ] = None

    def chosen(self) -> bool:
        """Whether a token was chosen (--module alone, often from SIGNKIT_MODULE, is not)."""
        return any(
            v is not None for v in (self.token_label, self.token_serial, self.slot, self.key_uri)
        )


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ModuleOptions:
    """Only the module (commands that look at every token)."""

    module: Module = None


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class KeyOptions:
    """Which key on the token."""

    key_label: Annotated[
        str | None,
        typer.Option(
            "--key-label", metavar="LABEL", help="Label of the key or of its certificate."
        ),
    ] = None
    key_id: Annotated[
        str | None, typer.Option("--key-id", metavar="HEX", help="CKA_ID of the key, in hex.")
    ] = None
    cert_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--cert-fingerprint",
            metavar="SHA256",
            help="SHA-256 fingerprint of the signer certificate (hex).",
        ),
    ] = None

    def chosen(self) -> bool:
        """Whether any key option was given."""
        return any(v is not None for v in (self.key_label, self.key_id, self.cert_fingerprint))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class PinOptions:
    """Where the PIN comes from (besides SIGNKIT_PIN and the prompt)."""

    pin_file: Annotated[
        Path | None,
        typer.Option(
            "--pin-file",
            metavar="FILE",
            dir_okay=False,
            help="Read the PIN from this file (first line).",
        ),
    ] = None
    pin_stdin: Annotated[
        bool, typer.Option("--pin-stdin", help="Read the PIN from standard input.")
    ] = False
    pin_pad: Annotated[
        bool,
        typer.Option(
            "--pin-pad",
            help="Enter the PIN on the reader's PIN pad (protected authentication path).",
        ),
    ] = False


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class InputOptions:
    """The documents of a bulk command: files, directories, a manifest."""

    inputs: Annotated[list[str] | None, typer.Argument(metavar="INPUT", show_default=False)] = None
    recursive: Annotated[
        bool, typer.Option("-r", "--recursive", help="Descend into directories.")
    ] = False
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest",
            metavar="FILE",
            dir_okay=False,
            help="CSV or JSON Lines, one row per document; columns named after the "
            "long options (input; for signing also output, reason, level, preset, ...).",
        ),
    ] = None
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="K/N",
            help="Take only part K of N of the documents (split by a hash of each path, the "
            "same on every host): N runs with the same inputs and K = 1..N share the work.",
        ),
    ] = None
    require_input: Annotated[
        bool,
        typer.Option(
            "--require-input",
            help="Exit 3 when the inputs hold no document (by default an empty inbox is "
            "success: exit 0, one line).",
        ),
    ] = False

    def given(self) -> bool:
        """Whether any input or a manifest was given."""
        return bool(self.inputs) or self.manifest is not None

    def part(self) -> "Shard | None":
        """The --shard K/N, checked."""
        from signkit.jobs.inputs import Shard

        return Shard.parse(self.shard) if self.shard is not None else None


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class BatchOptions:
    """Outputs and batch behaviour of the bulk signing commands."""

    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", metavar="FILE", dir_okay=False, help="Output file (single input)."
        ),
    ] = None
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            metavar="DIRECTORY",
            file_okay=False,
            help="Write outputs here, mirroring the input tree.",
        ),
    ] = None
    suffix: Annotated[
        str, typer.Option("--suffix", help="Output next to the input: a.pdf -> a_signed.pdf.")
    ] = "_signed"
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Replace the input once the signed file is complete and checked.",
        ),
    ] = False
    allow_absolute_outputs: Annotated[
        bool,
        typer.Option(
            "--allow-absolute-outputs",
            help="Let manifest rows name outputs anywhere (absolute, or climbing "
            "out with ../); by default they stay under the manifest's folder "
            "(or --output-dir).",
        ),
    ] = False
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False
    resign: Annotated[
        bool,
        typer.Option(
            "--resign",
            help="Sign again documents whose output already carries this signer's signature.",
        ),
    ] = False
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; sign nothing.")] = (
        False
    )
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first failed document.")
    ] = False
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            min=1,
            metavar="N",
            help="Worker processes preparing documents (default: one per CPU; for XML, one fewer).",
        ),
    ] = None


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ProgressOptions:
    """Progress of a batch off a terminal (the journal, a log file)."""

    progress_every: Annotated[
        int,
        typer.Option(
            "--progress-every",
            min=0,
            metavar="N",
            help="Off a terminal, a progress line on stderr every N documents, and at least "
            "every 30 seconds (0: none; a terminal shows a bar).",
        ),
    ] = 100


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class LimitsOptions:
    """Each document's budget in its worker process (hostile files)."""

    doc_memory: Annotated[
        int,
        typer.Option(
            "--doc-memory",
            min=16,
            metavar="MiB",
            help="Memory a document may take while processed; over it, it fails as "
            "malformed and the batch goes on.",
        ),
    ] = 1024
    doc_timeout: Annotated[
        float,
        typer.Option(
            "--doc-timeout",
            min=1,
            metavar="SECONDS",
            help="Time a document may take while processed; over it, it fails as "
            "malformed and the batch goes on.",
        ),
    ] = 120

    def limits(self) -> "Limits":
        """The worker pool's Limits."""
        from signkit.workers import Limits

        return Limits(memory_bytes=int(self.doc_memory) << 20, seconds=float(self.doc_timeout))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TsaOptions:
    """The RFC 3161 time-stamping authority."""

    tsa_url: Annotated[
        str | None, typer.Option("--tsa", metavar="URL", help="RFC 3161 time-stamping authority.")
    ] = None
    tsa_policy: Annotated[
        str | None, typer.Option("--tsa-policy", metavar="OID", help="Requested TSA policy.")
    ] = None
    tsa_no_nonce: Annotated[
        bool, typer.Option("--tsa-no-nonce", help="Do not send a nonce to the TSA.")
    ] = False
    tsa_user: Annotated[
        str | None,
        typer.Option("--tsa-user", metavar="USER", help="HTTP basic-auth user for the TSA."),
    ] = None
    tsa_password_file: Annotated[
        Path | None,
        typer.Option(
            "--tsa-password-file",
            metavar="FILE",
            dir_okay=False,
            help="TSA password file [or env SIGNKIT_TSA_PASSWORD].",
        ),
    ] = None


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TrustOptions:
    """Trust anchors and how strictly revocation is checked."""

    trust: Annotated[
        list[str] | None,
        typer.Option(
            "--trust",
            metavar="PATH|NAME",
            help="Trust anchors: a PEM/DER/PKCS#7 file or directory, or an installed "
            "bundle by name (vn-gov, vn-public: ~/.config/signkit/trust/NAME/); repeatable. "
            "Nothing else is trusted.",
            autocompletion=trust_bundles,
        ),
    ] = None
    revocation: Annotated[
        Revocation,
        typer.Option(
            "--revocation",
            help="Revocation of the certificates (OCSP, then CRL). hard: an unknown status "
            "is a failure; soft: an unknown status is reported; off: not checked.",
        ),
    ] = "soft"


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ValidationOptions:
    """How certificates and signatures found on documents are validated."""

    trust_system: Annotated[
        bool, typer.Option("--trust-system", help="Also trust the operating system's CA store.")
    ] = False
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help="No network (no AIA, OCSP, CRL): only what documents embed (LTV data).",
        ),
    ] = False
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="TIME", help="Validate as of this ISO 8601 time."),
    ] = None
    intermediates: Annotated[
        list[Path] | None,
        typer.Option(
            "--intermediates",
            metavar="FILE|DIR",
            help="Untrusted CA certificates for building chains (PEM/DER/PKCS#7); repeatable.",
        ),
    ] = None

    def intermediate_certificates(self) -> tuple[bytes, ...]:
        """The --intermediates certificates (DER), each once."""
        from signkit.pki.anchors import load_certificates

        return tuple(dict.fromkeys(load_certificates(self.intermediates or ())))


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class ReportOptions:
    """The JSON report file."""

    report_path: Annotated[
        Path | None,
        typer.Option(
            "--report", metavar="FILE", dir_okay=False, help="Write the JSON report here too."
        ),
    ] = None


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class AuditOptions:
    """The audit log a run appends to."""

    audit_log: Annotated[
        Path | None,
        typer.Option(
            "--audit-log",
            metavar="FILE",
            dir_okay=False,
            help="Audit log (default: $XDG_STATE_HOME/signkit/audit.jsonl).",
        ),
    ] = None
    no_audit: Annotated[
        bool,
        typer.Option("--no-audit", help="Do not write the audit log (noted on stderr)."),
    ] = False


@dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class AuditSealOptions:
    """Seal, time-stamp, anchor, syslog and rotation of the audit log (signing runs)."""

    audit_seal_key: Annotated[
        Path | None,
        typer.Option(
            "--audit-seal-key",
            metavar="FILE",
            dir_okay=False,
            help="Ed25519 key that seals the audit log (default: "
            "$XDG_STATE_HOME/signkit/audit-seal.key, created on first use).",
        ),
    ] = None
    audit_tsa: Annotated[
        str | None,
        typer.Option(
            "--audit-tsa",
            metavar="URL",
            help="Also time-stamp each run's last audit record (RFC 3161).",
        ),
    ] = None
    audit_anchor: Annotated[
        Path | None,
        typer.Option(
            "--audit-anchor",
            metavar="FILE",
            dir_okay=False,
            help="Copy every seal to this file, kept where the log's writers cannot "
            "rewrite it (default: <log>.anchor).",
        ),
    ] = None
    audit_syslog: Annotated[
        bool,
        typer.Option(
            "--audit-syslog",
            help="Forward every audit record to syslog/journald "
            "(socket: $SIGNKIT_SYSLOG_SOCKET, else /dev/log).",
        ),
    ] = False
    audit_max_bytes: Annotated[
        int | None,
        typer.Option(
            "--audit-max-bytes",
            min=1,
            metavar="N",
            help="Rotate the audit log once it is larger than N bytes.",
        ),
    ] = None

    def spec(self) -> "AuditSpec":
        """The audit log's AuditSpec."""
        from signkit.audit.log import AuditSpec
        from signkit.pki.timestamps import TsaSpec

        return AuditSpec(
            seal_key=self.audit_seal_key,
            tsa=TsaSpec(url=self.audit_tsa) if self.audit_tsa else None,
            anchor=self.audit_anchor,
            syslog=self.audit_syslog,
            max_bytes=self.audit_max_bytes,
        )
