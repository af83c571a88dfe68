"""Named trust bundles: the roots an office trusts, installed once and named
on the command line (``--trust vn-gov``).

A bundle is a directory ``<dir>/NAME/`` holding one PEM file per certificate,
named by its SHA-256 fingerprint, in the user's configuration directory or the
system's (``bundle_dirs``). Adding shows each certificate's fingerprint first,
so a person can compare it with the one the certificate authority publishes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from signkit.errors import ConfigError, InputError, UsageError
from signkit.pki.anchors import _BUNDLE_NAME, bundle_dirs, load_certificates


@dataclass(frozen=True, kw_only=True)
class BundleCertificate:
    """One certificate of a bundle, as a person checks it."""

    subject: str
    """Subject (RFC 4514)."""
    issuer: str
    """Issuer (RFC 4514)."""
    not_after: str
    """End of validity (YYYY-MM-DD, UTC)."""
    sha256: str
    """SHA-256 fingerprint, colon-separated upper-case hex (as CAs publish it)."""
    is_ca: bool
    """A CA certificate (basicConstraints cA)."""
    self_signed: bool
    """A root: issued by itself."""
    der: bytes
    """The certificate."""


@dataclass(frozen=True, kw_only=True)
class Bundle:
    """An installed bundle."""

    name: str
    """What --trust takes."""
    path: Path
    """Its directory (or file, for a bundle put there by hand)."""
    system: bool
    """In the system directory (/etc/signkit/trust) rather than the user's."""
    certificates: tuple[BundleCertificate, ...]
    """Its certificates."""


def fingerprint(der: bytes) -> str:
    """SHA-256 as CAs print it: AB:CD:…"""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def describe(der: bytes) -> BundleCertificate:
    """What a person needs to decide whether to trust ``der``."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bool(constraints.ca)
    except x509.ExtensionNotFound:
        is_ca = False
    return BundleCertificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=f"{cert.not_valid_after_utc:%Y-%m-%d}",
        sha256=fingerprint(der),
        is_ca=is_ca,
        self_signed=cert.subject == cert.issuer,
        der=der,
    )


def read_certificates(files: list[Path]) -> list[BundleCertificate]:
    """The certificates of ``files`` (PEM, DER or PKCS#7), each once."""
    for path in files:
        if not path.is_file():
            raise InputError("no such file", subject=str(path))
    unique = dict.fromkeys(load_certificates(files))
    if not unique:
        raise InputError("no certificate found", subject=", ".join(map(str, files)))
    return [describe(der) for der in unique]


def check_name(name: str) -> str:
    """A bundle name: lower-case letters, digits, '.', '_' and '-'."""
    if not _BUNDLE_NAME.fullmatch(name):
        raise UsageError(
            "a bundle name is lower-case letters, digits, '.', '_' and '-'",
            subject=name,
            hint="e.g. vn-gov, vn-public",
        )
    return name


def _entries(environ: dict[str, str] | None) -> list[tuple[str, Path, bool]]:
    """(name, path, is the system's) of every installed bundle, the user's
    first; a user's bundle hides the system's of the same name."""
    dirs = bundle_dirs(environ if environ is not None else dict(os.environ))
    found: dict[str, tuple[str, Path, bool]] = {}
    for n, base in enumerate(dirs):
        try:
            entries = sorted(base.iterdir())
        except OSError:
            continue  # absent or unreadable: no bundles there
        for entry in entries:
            name = entry.name.removesuffix(".pem").removesuffix(".crt")
            if name in found or not _BUNDLE_NAME.fullmatch(name):
                continue
            if not (entry.is_dir() or entry.suffix in (".pem", ".crt")):
                continue
            found[name] = (name, entry, n > 0)
    return list(found.values())


def names(environ: dict[str, str] | None = None) -> list[str]:
    """The installed bundles' names, their certificates unread (for shell
    completion, asked at each TAB)."""
    return [name for name, _path, _system in _entries(environ)]


def installed(environ: dict[str, str] | None = None) -> list[Bundle]:
    """Every installed bundle, the user's first (a user's bundle hides the
    system's of the same name, as --trust NAME resolves it)."""
    bundles = []
    for name, entry, system in _entries(environ):
        try:
            certs = tuple(describe(der) for der in load_certificates([entry]))
        except InputError:
            certs = ()
        bundles.append(Bundle(name=name, path=entry, system=system, certificates=certs))
    return bundles


def find(name: str, environ: dict[str, str] | None = None) -> Bundle:
    """The installed bundle called ``name``."""
    for bundle in installed(environ):
        if bundle.name == check_name(name):
            return bundle
    raise ConfigError(
        "no trust bundle of that name is installed",
        subject=name,
        hint="`signkit trust list` shows the installed ones",
    )


def target_dir(name: str, *, system: bool, environ: dict[str, str] | None = None) -> Path:
    """Where ``add`` puts bundle ``name``."""
    user, system_dir = bundle_dirs(environ if environ is not None else dict(os.environ))
    return (system_dir if system else user) / check_name(name)


def add(
    name: str,
    certificates: list[BundleCertificate],
    *,
    system: bool,
    environ: dict[str, str] | None = None,
) -> tuple[Path, int]:
    """Write ``certificates`` into bundle ``name`` (created if needed): one PEM
    file per certificate, named by its fingerprint. Returns the directory and
    how many were new."""
    from signkit.fsio import atomic_write

    directory = target_dir(name, system=system, environ=environ)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the bundle directory ({exc.strerror or exc})", subject=str(directory)
        ) from None
    new = 0
    for cert in certificates:
        path = directory / (cert.sha256.replace(":", "").lower()[:40] + ".pem")
        if path.exists():
            continue
        body = "\n".join(textwrap.wrap(base64.b64encode(cert.der).decode(), 64))
        text = (
            f"# {cert.subject}\n# SHA-256 {cert.sha256}\n"
            f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"
        )
        try:
            atomic_write(path, text.encode())
        except OSError as exc:
            raise ConfigError(f"cannot write ({exc.strerror or exc})", subject=str(path)) from None
        new += 1
    return directory, new


def remove(name: str, *, system: bool, environ: dict[str, str] | None = None) -> Path:
    """Delete bundle ``name`` (the PEM files ``add`` wrote, then its directory)."""
    directory = target_dir(name, system=system, environ=environ)
    if not directory.is_dir():
        raise ConfigError(
            "no trust bundle of that name here",
            subject=str(directory),
            hint="`signkit trust list` shows where each bundle is",
        )
    others = [p for p in directory.iterdir() if p.suffix != ".pem"]
    if others:
        raise ConfigError(
            "the bundle directory holds other files; remove it by hand", subject=str(directory)
        )
    try:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
    except OSError as exc:
        raise ConfigError(
            f"cannot remove ({exc.strerror or exc})", subject=str(directory)
        ) from None
    return directory
