"""`signkit trust list|show|add|remove`: named bundles of trust anchors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from signkit.i18n import t

from .complete import trust_bundles
from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import ConfigOptions, OutputOptions

app = new_app(
    "trust", "Install and list the roots --trust NAME trusts (bundles).", no_args_is_help=True
)


@app.callback()
def group() -> None:
    """Install and list the roots --trust NAME trusts (bundles).

    \b
    Official sources: the Vietnam National Root CA of NEAC (the roots of public
    CAs such as VNPT-CA, Viettel-CA, BKAV-CA) and the Government CA of Ban Cơ
    yếu Chính phủ (state officials' certificates). Compare each SHA-256
    fingerprint shown by `signkit trust add` with the one the CA publishes.
    """


System = Annotated[
    bool,
    typer.Option("--system", help="The system's bundles (/etc/signkit/trust), not the user's."),
]


def _cert_lines(cert: Any) -> list[str]:
    kind = "root" if cert.self_signed else ("CA" if cert.is_ca else "not a CA")
    return [
        f"  {cert.subject}",
        f"    {t('issuer')}: {cert.issuer}",
        f"    {t('valid until')}: {cert.not_after}  ({t(kind)})",
        f"    SHA-256: {cert.sha256}",
    ]


@command(app, "list")
@grouped
def list_bundles(*, config: ConfigOptions, output_options: OutputOptions) -> None:
    """List the installed bundles: name, where, how many certificates."""
    out = Output.of(output_options)

    def body() -> int:
        from signkit.pki import bundles

        found = bundles.installed()
        if out.json:
            out.emit_json(
                {
                    "bundles": [
                        {
                            "name": b.name,
                            "path": str(b.path),
                            "system": b.system,
                            "certificates": [c.sha256 for c in b.certificates],
                        }
                        for b in found
                    ]
                }
            )
            return 0
        if not found:
            out.info("no trust bundle is installed")
            out.info("add one with: signkit trust add NAME FILE... (see signkit trust --help)")
            return 0
        for b in found:
            where = t("system") if b.system else t("user")
            typer.echo(f"{b.name}  {len(b.certificates)} {t('certificate(s)')}  {b.path} ({where})")
        return 0

    run_command(out, body)


@command(app, "show")
@grouped
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", autocompletion=trust_bundles)],
    *,
    config: ConfigOptions,
    output_options: OutputOptions,
) -> None:
    """Each certificate of bundle NAME with its SHA-256 fingerprint."""
    out = Output.of(output_options)

    def body() -> int:
        from signkit.pki import bundles

        bundle = bundles.find(name)
        if out.json:
            out.emit_json(
                {
                    "name": bundle.name,
                    "path": str(bundle.path),
                    "certificates": [
                        {k: v for k, v in vars(c).items() if k != "der"}
                        for c in bundle.certificates
                    ],
                }
            )
            return 0
        typer.echo(f"{bundle.name}: {bundle.path}")
        for cert in bundle.certificates:
            for line in _cert_lines(cert):
                typer.echo(line)
        return 0

    run_command(out, body)


@command(app, "add")
@grouped
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", autocompletion=trust_bundles)],
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", dir_okay=False)],
    *,
    system: System = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Add without asking (after checking the fingerprints).")
    ] = False,
    config: ConfigOptions,
    output_options: OutputOptions,
) -> None:
    """Add the certificates of FILE... (PEM, DER or PKCS#7) to bundle NAME.

    Each certificate is shown with its SHA-256 fingerprint first: compare it
    with the one the certificate authority publishes before you answer.

    \b
    Example:
      signkit trust add vn-gov RootCA-G2.crt
      signkit trust show vn-gov
      signkit sign pdf --trust vn-gov inbox/*.pdf
    """
    out = Output.of(output_options)

    def body() -> int:
        from signkit.errors import UsageError
        from signkit.pki import bundles

        bundles.check_name(name)
        certs = bundles.read_certificates(list(files))
        sys.stderr.write(t("Certificates to trust as {name}:").replace("{name}", name) + "\n")
        for cert in certs:
            for line in _cert_lines(cert):
                sys.stderr.write(line + "\n")
        for cert in certs:
            if not cert.is_ca:
                out.warn(f"not a CA certificate: {cert.subject}")
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    "not added: nobody confirmed the fingerprints",
                    hint="compare them with the CA's published ones, then run again with --yes",
                )
            sys.stderr.write(f"{t('Add them?')} {t('[y/N]')} ")
            sys.stderr.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes", "c", "có"):
                out.info("nothing added")
                return 0
        directory, new = bundles.add(name, certs, system=system)
        out.info(f"{new} certificate(s) added to {name} ({directory})")
        if out.json:
            out.emit_json(
                {
                    "name": name,
                    "path": str(directory),
                    "added": new,
                    "certificates": [c.sha256 for c in certs],
                }
            )
        return 0

    run_command(out, body)


@command(app, "remove")
@grouped
def remove(
    name: Annotated[str, typer.Argument(metavar="NAME", autocompletion=trust_bundles)],
    *,
    system: System = False,
    config: ConfigOptions,
    output_options: OutputOptions,
) -> None:
    """Remove bundle NAME (the user's, or the system's with --system)."""
    out = Output.of(output_options)

    def body() -> int:
        from signkit.pki import bundles

        directory = bundles.remove(name, system=system)
        out.info(f"removed {name} ({directory})")
        return 0

    run_command(out, body)
