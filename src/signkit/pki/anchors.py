"""Trust anchors: certificate files and bundles, named bundles, the OS store.

Only the configured anchors are trusted (``--trust`` files, directories or
installed bundles by name; the OS store only when asked for).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from signkit.errors import ConfigError, InputError

RevocationMode = Literal["hard", "soft", "off"]


@dataclass(frozen=True, kw_only=True)
class TrustSpec:
    """Which anchors to trust and how strictly to check revocation."""

    anchors: tuple[Path, ...] = ()
    """Files (PEM/DER, bundles) or directories of trust anchors."""
    revocation: RevocationMode = "soft"
    """hard: unknown status refuses; soft: warns; off: not checked."""
    offline: bool = False
    """No network: no AIA, OCSP or CRL fetching."""


def load_certificates(paths: Iterable[Path]) -> list[bytes]:
    """DER certificates from PEM/DER files, PEM bundles, PKCS#7 bundles and directories."""
    from asn1crypto import cms, pem

    found: list[bytes] = []
    for path in paths:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise InputError(f"cannot read ({exc.strerror})", subject=str(file)) from None
            blobs: list[bytes] = []
            if pem.detect(data):
                for kind, _, der in pem.unarmor(data, multiple=True):
                    if kind in ("CERTIFICATE", "TRUSTED CERTIFICATE", "PKCS7"):
                        blobs.append(der)
            else:
                blobs.append(data)
            for blob in blobs:
                found.extend(_certs_from_blob(blob, cms, str(file)))
    return found


def _certs_from_blob(blob: bytes, cms: Any, source: str) -> list[bytes]:
    from asn1crypto import x509

    try:
        info = cms.ContentInfo.load(blob)
        if info["content_type"].native == "signed_data":
            return [c.chosen.dump() for c in info["content"]["certificates"]]
    except (ValueError, TypeError, KeyError):
        pass
    try:
        cert = x509.Certificate.load(blob)
        cert.native  # noqa: B018 - force a full parse so garbage fails here
        return [cert.dump()]
    except (ValueError, TypeError) as exc:
        raise InputError("not a certificate (PEM, DER or PKCS#7)", subject=source) from exc


_BUNDLE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")


def bundle_dirs(environ: Mapping[str, str] = os.environ) -> tuple[Path, ...]:
    """Where named trust bundles live: the user's config, then the system's."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return (Path(config) / "signkit" / "trust", Path("/etc/signkit/trust"))


def resolve_anchor(value: str, environ: Mapping[str, str] = os.environ) -> Path:
    """A --trust value: a file or directory, or the name of an installed bundle
    (``vn-gov`` for the Government CA roots, ``vn-public`` for the National Root
    CA, or any name): ``<dir>/NAME/`` or ``<dir>/NAME.pem`` in ``bundle_dirs``."""
    path = Path(value)
    if path.exists() or not _BUNDLE_NAME.fullmatch(value):
        return path
    for base in bundle_dirs(environ):
        for candidate in (base / value, base / f"{value}.pem", base / f"{value}.crt"):
            if candidate.exists():
                return candidate
    where = " or ".join(str(b / value) for b in bundle_dirs(environ))
    raise ConfigError(
        "no such trust file, and no trust bundle of that name is installed",
        subject=value,
        hint=f"put the roots (PEM, DER or PKCS#7) in {where}",
    )


def require_anchors(spec: TrustSpec) -> None:
    """Fail early when a --trust path does not exist."""
    for path in spec.anchors:
        if not path.exists():
            raise ConfigError("trust anchor path does not exist", subject=str(path))


# Where Debian, Ubuntu, Fedora and Alpine keep the OS trust store.
SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
    Path("/etc/ssl/cert.pem"),
)


def anchors_from(paths: tuple[Path, ...], *, system: bool) -> tuple[bytes, ...]:
    """DER anchors from --trust files/directories, plus the OS store with --trust-system."""
    found = load_certificates(paths)
    if system:
        bundle = next((p for p in SYSTEM_BUNDLES if p.is_file()), None)
        if bundle is not None:
            found += load_certificates([bundle])
    return tuple(dict.fromkeys(found))
