#!/usr/bin/env python3
"""Build the signkit SoftHSM test tokens described in softhsm/layout.toml.

Usage::

    python softhsm/init_tokens.py --dir DIR [--tokens signkit-demo,...]

Writes DIR/softhsm2.conf and DIR/softhsm2-rawonly.conf, wipes DIR/tokens and
recreates the requested tokens (default: all of them) from the certomancer
PKI in fixtures/pki. The system-wide SoftHSM configuration is never used:
every SoftHSM call runs with SOFTHSM2_CONF pointing into DIR.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asn1crypto import keys, x509
    from pkcs11 import Session

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYOUT_PATH = REPO_ROOT / "softhsm" / "layout.toml"
PKI_CONFIG_PATH = REPO_ROOT / "fixtures" / "pki" / "certomancer.yml"
PKI_ARCH = "signkit-test"

MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
)
CONF_NAME = "softhsm2.conf"
RAWONLY_CONF_NAME = "softhsm2-rawonly.conf"
# Models tokens that cannot hash on-token: only raw PKCS#1 v1.5 and raw ECDSA.
RAWONLY_MECHANISMS = "CKM_RSA_PKCS,CKM_ECDSA"

_KEY_FIELDS = frozenset(
    {"cert", "id", "cert_id", "key_label", "cert_label", "public_key", "always_authenticate"}
)
_CERT_FIELDS = frozenset({"cert", "id", "cert_label"})
_TOKEN_FIELDS = frozenset({"description", "keys", "certs"})


class LoaderError(Exception):
    """A problem the user can fix (bad layout, missing tool, ...)."""


@dataclass(frozen=True)
class KeyEntry:
    """A private key (plus optional public key) and its certificate."""

    cert: str
    id: bytes
    cert_id: bytes
    key_label: str | None
    cert_label: str
    public_key: bool
    always_authenticate: bool


@dataclass(frozen=True)
class CertEntry:
    """A certificate stored without a key (issuer chain)."""

    cert: str
    id: bytes
    cert_label: str


@dataclass(frozen=True)
class TokenSpec:
    """One token of the layout."""

    label: str
    description: str
    keys: tuple[KeyEntry, ...]
    certs: tuple[CertEntry, ...]


@dataclass(frozen=True)
class Layout:
    """The parsed layout.toml."""

    so_pin: str
    user_pin: str
    tokens: dict[str, TokenSpec]


def _hex_id(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise LoaderError(f"{where}: id must be a hex string, got {value!r}")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise LoaderError(f"{where}: invalid hex id {value!r}") from exc


def _check_fields(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise LoaderError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


def _parse_key(raw: dict[str, Any], where: str) -> KeyEntry:
    _check_fields(raw, _KEY_FIELDS, where)
    try:
        key_id = _hex_id(raw["id"], where)
        return KeyEntry(
            cert=str(raw["cert"]),
            id=key_id,
            cert_id=_hex_id(raw["cert_id"], where) if "cert_id" in raw else key_id,
            key_label=raw.get("key_label"),
            cert_label=str(raw["cert_label"]),
            public_key=bool(raw.get("public_key", True)),
            always_authenticate=bool(raw.get("always_authenticate", False)),
        )
    except KeyError as exc:
        raise LoaderError(f"{where}: missing field {exc.args[0]!r}") from exc


def _parse_cert(raw: dict[str, Any], where: str) -> CertEntry:
    _check_fields(raw, _CERT_FIELDS, where)
    try:
        return CertEntry(
            cert=str(raw["cert"]),
            id=_hex_id(raw["id"], where),
            cert_label=str(raw["cert_label"]),
        )
    except KeyError as exc:
        raise LoaderError(f"{where}: missing field {exc.args[0]!r}") from exc


def _check_unique_ids(spec: TokenSpec) -> None:
    # Duplicate ids within one object class would make the fixture ambiguous.
    key_ids = [k.id for k in spec.keys]
    cert_ids = [k.cert_id for k in spec.keys] + [c.id for c in spec.certs]
    for kind, ids in (("key", key_ids), ("certificate", cert_ids)):
        if len(ids) != len(set(ids)):
            raise LoaderError(f"token {spec.label}: duplicate {kind} CKA_ID")


def load_layout(path: Path = LAYOUT_PATH) -> Layout:
    """Parse and validate layout.toml."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    tokens: dict[str, TokenSpec] = {}
    for label, raw in data.get("tokens", {}).items():
        where = f"{path.name}: tokens.{label}"
        _check_fields(raw, _TOKEN_FIELDS, where)
        spec = TokenSpec(
            label=label,
            description=str(raw.get("description", "")),
            keys=tuple(
                _parse_key(k, f"{where}.keys[{i}]") for i, k in enumerate(raw.get("keys", []))
            ),
            certs=tuple(
                _parse_cert(c, f"{where}.certs[{i}]") for i, c in enumerate(raw.get("certs", []))
            ),
        )
        _check_unique_ids(spec)
        tokens[label] = spec
    try:
        return Layout(so_pin=str(data["so_pin"]), user_pin=str(data["user_pin"]), tokens=tokens)
    except KeyError as exc:
        raise LoaderError(f"{path.name}: missing {exc.args[0]!r}") from exc


def find_module(explicit: str | None) -> str:
    """Return the SoftHSM PKCS#11 module path, checking that it exists."""
    candidates = (explicit,) if explicit else MODULE_CANDIDATES
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise LoaderError(
        f"SoftHSM module not found (tried {', '.join(c for c in candidates if c)}); "
        "install softhsm2 or pass --module"
    )


def write_configs(base: Path) -> tuple[Path, Path]:
    """Write the normal and the raw-only SoftHSM config into base."""
    token_dir = base / "tokens"
    common = (
        "# Generated by softhsm/init_tokens.py; rewritten on every run.\n"
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    conf = base / CONF_NAME
    rawonly = base / RAWONLY_CONF_NAME
    conf.write_text(common, encoding="utf-8")
    rawonly.write_text(common + f"slots.mechanisms = {RAWONLY_MECHANISMS}\n", encoding="utf-8")
    return conf, rawonly


def reset_token_dir(base: Path) -> None:
    """Remove every token under base/tokens and recreate the empty directory."""
    token_dir = base / "tokens"
    if token_dir.exists():
        shutil.rmtree(token_dir)
    token_dir.mkdir(parents=True)


def init_token(conf: Path, label: str, layout: Layout) -> None:
    """Initialise one token in the first free slot with softhsm2-util."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise LoaderError("softhsm2-util not found on PATH; install softhsm2")
    cmd = [
        util,
        "--init-token",
        "--free",
        "--label",
        label,
        "--so-pin",
        layout.so_pin,
        "--pin",
        layout.user_pin,
    ]
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LoaderError(f"softhsm2-util failed for token {label}: {detail}")


def _private_key_attrs(key: keys.PrivateKeyInfo) -> dict[Any, Any]:
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util import biginteger

    parsed = key["private_key"].parsed
    if key.algorithm == "rsa":
        return {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.MODULUS: biginteger(parsed["modulus"]),
            Attribute.PUBLIC_EXPONENT: biginteger(parsed["public_exponent"]),
            Attribute.PRIVATE_EXPONENT: biginteger(parsed["private_exponent"]),
            Attribute.PRIME_1: biginteger(parsed["prime1"]),
            Attribute.PRIME_2: biginteger(parsed["prime2"]),
            Attribute.EXPONENT_1: biginteger(parsed["exponent1"]),
            Attribute.EXPONENT_2: biginteger(parsed["exponent2"]),
            Attribute.COEFFICIENT: biginteger(parsed["coefficient"]),
        }
    if key.algorithm == "ec":
        return {
            Attribute.CLASS: ObjectClass.PRIVATE_KEY,
            Attribute.KEY_TYPE: KeyType.EC,
            # PKCS#8 carries the curve in the algorithm, not in ECPrivateKey.
            Attribute.EC_PARAMS: key["private_key_algorithm"]["parameters"].dump(),
            Attribute.VALUE: parsed["private_key"].contents,
        }
    raise LoaderError(f"unsupported key algorithm {key.algorithm!r}")


def _public_key_attrs(cert: x509.Certificate) -> dict[Any, Any]:
    from asn1crypto.core import OctetString
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util import biginteger

    info = cert.public_key
    if info.algorithm == "rsa":
        parsed = info["public_key"].parsed
        return {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.RSA,
            Attribute.MODULUS: biginteger(parsed["modulus"]),
            Attribute.PUBLIC_EXPONENT: biginteger(parsed["public_exponent"]),
        }
    if info.algorithm == "ec":
        return {
            Attribute.CLASS: ObjectClass.PUBLIC_KEY,
            Attribute.KEY_TYPE: KeyType.EC,
            Attribute.EC_PARAMS: info["algorithm"]["parameters"].dump(),
            # PKCS#11 wants the point wrapped in a DER OCTET STRING.
            Attribute.EC_POINT: OctetString(bytes(info["public_key"])).dump(),
        }
    raise LoaderError(f"unsupported public key algorithm {info.algorithm!r}")


def _cert_attrs(cert: x509.Certificate, cert_id: bytes, label: str) -> dict[Any, Any]:
    from pkcs11 import Attribute, CertificateType, ObjectClass

    return {
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: False,
        Attribute.SUBJECT: cert.subject.dump(),
        Attribute.ISSUER: cert.issuer.dump(),
        Attribute.SERIAL_NUMBER: cert["tbs_certificate"]["serial_number"].dump(),
        Attribute.VALUE: cert.dump(),
        Attribute.ID: cert_id,
        Attribute.LABEL: label,
    }


class Pki:
    """Certificates and keys of the certomancer test PKI."""

    def __init__(self, config_path: Path = PKI_CONFIG_PATH) -> None:
        """Load the certomancer config (keys are read from fixtures/pki/keys)."""
        from certomancer.registry import ArchLabel, CertomancerConfig

        cfg = CertomancerConfig.from_file(str(config_path))
        self._arch = cfg.get_pki_arch(ArchLabel(PKI_ARCH))

    def cert(self, label: str) -> x509.Certificate:
        """Return the certificate with the given certomancer label."""
        from certomancer.registry import CertLabel

        return self._arch.get_cert(CertLabel(label))

    def private_key(self, label: str) -> keys.PrivateKeyInfo:
        """Return the subject private key of a certificate, checked against it."""
        from certomancer.registry import CertLabel

        key_label = self._arch.get_cert_spec(CertLabel(label)).subject_key
        key_set = self._arch.key_set
        if key_set.get_public_key(key_label).dump() != self.cert(label).public_key.dump():
            raise LoaderError(f"key file for {label} does not match its certificate")
        return key_set.get_private_key(key_label)


def populate_token(session: Session, spec: TokenSpec, pki: Pki) -> list[str]:
    """Create the objects of one token; return summary lines."""
    from pkcs11 import Attribute

    lines: list[str] = []
    for entry in spec.keys:
        cert = pki.cert(entry.cert)
        priv = _private_key_attrs(pki.private_key(entry.cert))
        priv.update(
            {
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                # SoftHSM would otherwise default these to true; these are
                # signing-only keys, as on the tokens being modelled.
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.ID: entry.id,
            }
        )
        if entry.key_label is not None:
            priv[Attribute.LABEL] = entry.key_label
        if entry.always_authenticate:
            priv[Attribute.ALWAYS_AUTHENTICATE] = True
        session.create_object(priv)

        if entry.public_key:
            pub = _public_key_attrs(cert)
            pub.update(
                {
                    Attribute.TOKEN: True,
                    Attribute.PRIVATE: False,
                    Attribute.VERIFY: True,
                    Attribute.ENCRYPT: False,
                    Attribute.WRAP: False,
                    Attribute.ID: entry.id,
                }
            )
            if entry.key_label is not None:
                pub[Attribute.LABEL] = entry.key_label
            session.create_object(pub)

        session.create_object(_cert_attrs(cert, entry.cert_id, entry.cert_label))
        flags = [cert.public_key.algorithm.upper()]
        if not entry.public_key:
            flags.append("no pubkey")
        if entry.always_authenticate:
            flags.append("always-auth")
        cert_id = "" if entry.cert_id == entry.id else f" cert-id={entry.cert_id.hex()}"
        lines.append(
            f"  key+cert {entry.cert:<15} id={entry.id.hex()}{cert_id} "
            f"key-label={entry.key_label!r} cert-label={entry.cert_label!r} "
            f"[{', '.join(flags)}]"
        )

    for chain in spec.certs:
        session.create_object(_cert_attrs(pki.cert(chain.cert), chain.id, chain.cert_label))
        lines.append(
            f"  cert     {chain.cert:<15} id={chain.id.hex()} cert-label={chain.cert_label!r}"
        )
    return lines


def build(base: Path, token_labels: Sequence[str], module: str, layout: Layout) -> None:
    """Write configs, reset the token directory and create the tokens."""
    # Resolve every certificate and key first, so that a broken PKI config
    # fails before the existing tokens are wiped.
    pki = Pki()
    for label in token_labels:
        spec = layout.tokens[label]
        for entry in spec.keys:
            pki.private_key(entry.cert)
        for chain in spec.certs:
            pki.cert(chain.cert)

    base.mkdir(parents=True, exist_ok=True)
    conf, rawonly = write_configs(base)
    reset_token_dir(base)
    for label in token_labels:
        init_token(conf, label, layout)

    # SoftHSM reads SOFTHSM2_CONF once, in C_Initialize, so it must be set
    # before the module is loaded (and after softhsm2-util created the slots).
    os.environ["SOFTHSM2_CONF"] = str(conf)
    import pkcs11

    lib = pkcs11.lib(module)
    for label in token_labels:
        spec = layout.tokens[label]
        token = lib.get_token(token_label=label)
        with token.open(rw=True, user_pin=layout.user_pin) as session:
            lines = populate_token(session, spec, pki)
        print(f"{label} (serial {token.serial.decode().strip()}): {spec.description}")
        print("\n".join(lines))

    print(f"\n{len(token_labels)} token(s) in {base / 'tokens'}")
    print(f"SO PIN {layout.so_pin}, user PIN {layout.user_pin}")
    print(f"export SOFTHSM2_CONF={conf}")
    print(f"raw-only mechanisms ({RAWONLY_MECHANISMS}): SOFTHSM2_CONF={rawonly}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse command-line arguments."""
    parser = argparse.ArgumentParser(
        description="Create the signkit SoftHSM test tokens in a private directory."
    )
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        help="output directory (gets softhsm2.conf, softhsm2-rawonly.conf, tokens/)",
    )
    parser.add_argument(
        "--tokens",
        help="comma-separated token labels from layout.toml (default: all); "
        "tokens not listed are removed",
    )
    parser.add_argument(
        "--module",
        help=f"SoftHSM PKCS#11 module (default: first of {', '.join(MODULE_CANDIDATES)})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    try:
        layout = load_layout()
        if args.tokens:
            labels = [t.strip() for t in args.tokens.split(",") if t.strip()]
            unknown = [t for t in labels if t not in layout.tokens]
            if unknown:
                raise LoaderError(
                    f"unknown token(s) {', '.join(unknown)}; "
                    f"layout.toml has {', '.join(layout.tokens)}"
                )
        else:
            labels = list(layout.tokens)
        if not labels:
            raise LoaderError("no tokens selected")
        build(args.dir.resolve(), labels, find_module(args.module), layout)
    except LoaderError as exc:
        message = str(exc)
    except ImportError as exc:
        message = (
            f"{exc}; run with the project's virtualenv "
            "(needs python-pkcs11, certomancer, asn1crypto)"
        )
    except Exception as exc:
        # PKCS#11, certomancer and I/O errors: one readable line beats a
        # traceback in CI logs, and the type name says which layer failed.
        message = f"{type(exc).__name__}: {exc}"
    else:
        return 0
    print(f"init_tokens: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
