"""Every run-time change signkit makes to its dependencies, in one place.

Each patch is a speed-up with the same results as the code it replaces, or
teaches a dependency an algorithm identifier it lacks; each touches private
names of a dependency. A patch is installed only when
the installed version is one it was checked against (``Patch.versions``);
any other version runs the dependency's own code, slower but right. The
tests in tests/unit/test_patches.py fail when a touched private name is gone
or a dependency moved past a guard, so an upgrade is a decision, not a
surprise. ``PRIVATE_USES`` lists the private names signkit calls without
patching them (pyHanko's DSS reader and report builders).
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class Patch:
    """One change to a dependency, and what it relies on."""

    name: str
    """What it is called in tests and reports."""
    distribution: str
    """The package it changes (as pip names it)."""
    versions: tuple[tuple[int, ...], tuple[int, ...]]
    """Installed only for versions in [low, high)."""
    touches: tuple[tuple[str, str], ...]
    """(module, dotted attribute) of every upstream name it replaces or reads."""
    install: Callable[[], None]
    """Put it in place (idempotent)."""


def _version(distribution: str) -> tuple[int, ...]:
    text = metadata.version(distribution)
    parts = []
    for piece in text.split("."):
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def applicable(patch: Patch, version: tuple[int, ...] | None = None) -> bool:
    """Whether ``patch`` may go in on this (or the given) version of its package."""
    found = _version(patch.distribution) if version is None else version
    low, high = patch.versions
    return low <= found < high


# ------------------------------------------------------------ pyHanko hex strings

_HEX = b"0123456789abcdefABCDEF"
_PDF_WHITESPACE = b" \n\r\t\f\x00"


def read_hex_string(stream: Any, *, original: Any) -> Any:
    """pyHanko's hex-string reader, in bulk instead of one byte per call.

    A signature's /Contents is tens of kilobytes of hex; pyHanko reads it a
    token at a time (about a third of a B-LT verification). Same result and
    errors; a string with a comment in it (legal, never seen) goes to pyHanko's.
    """
    from pyhanko.pdf_utils.generic import pdf_string
    from pyhanko.pdf_utils.misc import PdfStreamError

    start = stream.tell()
    stream.read(1)  # '<'
    chunks = []
    while True:
        block = stream.read(1 << 16)
        if not block:
            raise PdfStreamError("Stream ended prematurely")
        end = block.find(b">")
        if end >= 0:
            chunks.append(block[:end])
            stream.seek(end + 1 - len(block), 1)
            break
        chunks.append(block)
    digits = b"".join(chunks).translate(None, _PDF_WHITESPACE)
    if b"%" in digits:
        stream.seek(start)
        return original(stream)
    bad = digits.translate(None, _HEX)
    if bad:
        raise PdfStreamError("Unexpected token in hex string: " + repr(bad[:1]))
    if len(digits) % 2:
        digits += b"0"
    return pdf_string(binascii.unhexlify(digits))


def _install_fast_hex_reader() -> None:
    from pyhanko.pdf_utils import generic

    current = generic.read_hex_string_from_stream
    if getattr(current, "signkit_fast", False):
        return

    def fast(stream: Any) -> Any:
        return read_hex_string(stream, original=current)

    fast.signkit_fast = True  # type: ignore[attr-defined]
    fast.__wrapped_original__ = current  # type: ignore[attr-defined]
    generic.read_hex_string_from_stream = fast


# ------------------------------------------------------------ asn1crypto names

_PREPPED: dict[bytes, str] = {}


def _install_name_cache() -> None:
    """Remember RFC 5280 name preparation (stringprep) per encoded attribute.

    Certificate names are compared dozens of times per signature (path
    building, OCSP, CMS signer lookup) and asn1crypto redoes the stringprep
    for every parsed copy; the result depends on the DER alone, and the same
    issuers recur across a batch.
    """
    from asn1crypto import x509

    if getattr(x509.NameTypeAndValue, "signkit_cached", False):
        return

    def prepped_value(self: Any) -> str:
        if self._prepped is None:
            der = self.dump()
            value = _PREPPED.get(der)
            if value is None:
                value = self._ldap_string_prep(self["value"].native)
                if len(_PREPPED) < 100_000:
                    _PREPPED[der] = value
            self._prepped = value
        return str(self._prepped)

    x509.NameTypeAndValue.prepped_value = property(prepped_value)
    x509.NameTypeAndValue.signkit_cached = True


# ------------------------------------------------------------ certificate facts

_FACTS: dict[tuple[str, bytes], Any] = {}
# Keyed by whole certificates (about 1.5 KB each): a few thousand keep a
# worker's memory small whatever the archive; a batch has a handful.
_FACTS_LIMIT = 4096
# (module, class, property): each a function of the object's DER alone.
_FACT_PROPERTIES = (
    ("asn1crypto.x509", "Certificate", "key_identifier"),
    ("asn1crypto.x509", "Certificate", "issuer_serial"),
    ("asn1crypto.x509", "Name", "hashable"),
    ("asn1crypto.keys", "PublicKeyInfo", "sha1"),
)


def remembered_fact(name: str, fget: Callable[[Any], Any]) -> property:
    """``fget`` (a property's getter), remembered per encoded object.

    pyHanko files every certificate of every document in a fresh registry
    (key identifier, issuer and serial, subject, key hash), and asn1crypto
    computes each from a freshly parsed copy; the answers depend on the DER
    alone, and a batch's documents carry the same few certificates.
    """

    def remembered(self: Any) -> Any:
        key = (name, self.dump())
        try:
            return _FACTS[key]
        except KeyError:
            value = fget(self)
            if len(_FACTS) < _FACTS_LIMIT:
                _FACTS[key] = value
            return value

    remembered.signkit_remembered = True  # type: ignore[attr-defined]
    remembered.__wrapped_original__ = fget  # type: ignore[attr-defined]
    return property(remembered)


def _install_fact_cache() -> None:
    import importlib

    for module, cls_name, attr in _FACT_PROPERTIES:
        cls = getattr(importlib.import_module(module), cls_name)
        current = cls.__dict__[attr]
        if getattr(current.fget, "signkit_remembered", False):
            continue
        setattr(cls, attr, remembered_fact(f"{cls_name}.{attr}", current.fget))


def serial_first(original: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """pyHanko's ``match_issuer_serial`` with the serial number compared first.

    The original compares the issuer names first, by RFC 5280's rules when
    their encodings differ (slow: asn1crypto prepares every attribute), then
    the serial; a CMS signer is looked up among all the certificates a
    document carries, and nearly every one has another serial. Both tests
    must pass, so the answer is the same.
    """

    def match_issuer_serial(expected_issuer_serial: Any, cert: Any) -> bool:
        if expected_issuer_serial["serial_number"] != cert["tbs_certificate"]["serial_number"]:
            return False
        return original(expected_issuer_serial, cert)

    match_issuer_serial.signkit_serial_first = True  # type: ignore[attr-defined]
    match_issuer_serial.__wrapped_original__ = original  # type: ignore[attr-defined]
    return match_issuer_serial


def _install_serial_first() -> None:
    from pyhanko.sign import general

    current = general.match_issuer_serial
    if getattr(current, "signkit_serial_first", False):
        return
    general.match_issuer_serial = serial_first(current)  # type: ignore[assignment]


# ------------------------------------------------------------ certvalidator paths

_PATHS: set[tuple[Any, ...]] = set()
_SCOPE: list[str] = []


@contextmanager
def remembered_paths(policy_key: str) -> Iterator[None]:
    """Within this block, certification paths validated offline are remembered.

    A path's validation depends on its certificates, the trust and algorithm
    policy (``policy_key``), the validation instant, and the revocation data
    at hand; offline, that data is what the documents embed, so documents
    signed by the same certificate with the same DSS contents give the same
    answer. Only successes are remembered; validations that may fetch from
    the network, and everything outside such a block (the long-term process,
    whose proofs of existence are gathered along the way), run in full.
    """
    _SCOPE.append(policy_key)
    try:
        yield
    finally:
        _SCOPE.pop()


def cached_path_validation(current: Any) -> Any:
    """``current`` (certvalidator's async_validate_path), remembering successes
    inside ``remembered_paths`` blocks."""

    async def cached(validation_context: Any, path: Any, parameters: Any = None) -> Any:
        if not _SCOPE or validation_context.fetching_allowed:
            return await current(validation_context, path, parameters)
        params = validation_context.timing_params
        key = (
            _SCOPE[-1],
            params.point_in_time_validation,
            tuple(c.dump() for c in path.iter_certs(include_root=True)),
            params.validation_time,
            params.best_signature_time,
            params.time_tolerance,
            repr(validation_context.revinfo_policy),
            repr(parameters),
            frozenset(hashlib.sha256(o.dump()).digest() for o in validation_context.ocsps),
            frozenset(hashlib.sha256(c.dump()).digest() for c in validation_context.crls),
        )
        if key in _PATHS:
            validation_context.record_validation(path.leaf, path)
            return path.leaf
        result = await current(validation_context, path, parameters)
        if len(_PATHS) < 10_000:
            _PATHS.add(key)
        return result

    cached.signkit_cached = True  # type: ignore[attr-defined]
    return cached


def _install_path_cache() -> None:
    import pyhanko_certvalidator

    current = pyhanko_certvalidator.async_validate_path  # type: ignore[attr-defined]
    if getattr(current, "signkit_cached", False):
        return
    pyhanko_certvalidator.async_validate_path = cached_path_validation(current)  # type: ignore[attr-defined]


# ------------------------------------------------------------ asn1crypto RSA-SHA3

# RSA PKCS#1 v1.5 with SHA-3 (NIST CSOR sigAlgs 13-16): cryptography verifies
# them; asn1crypto does not know their identifiers, so pyHanko would call a
# signature made with them unverifiable rather than check it.
RSA_SHA3 = {
    "2.16.840.1.101.3.4.3.13": "sha3_224_rsa",
    "2.16.840.1.101.3.4.3.14": "sha3_256_rsa",
    "2.16.840.1.101.3.4.3.15": "sha3_384_rsa",
    "2.16.840.1.101.3.4.3.16": "sha3_512_rsa",
}


def _install_rsa_sha3() -> None:
    from asn1crypto import algos

    if getattr(algos.SignedDigestAlgorithm, "signkit_sha3", False):
        return
    names = set(RSA_SHA3.values())
    ids = algos.SignedDigestAlgorithmId
    for oid, name in RSA_SHA3.items():
        ids._map.setdefault(oid, name)
        ids._reverse_map.setdefault(name, oid)
    signature_algo = algos.SignedDigestAlgorithm.signature_algo
    hash_algo = algos.SignedDigestAlgorithm.hash_algo

    def signature(self: Any) -> str:
        if self["algorithm"].native in names:
            return "rsassa_pkcs1v15"
        return str(signature_algo.fget(self))

    def digest(self: Any) -> str:
        name = self["algorithm"].native
        if name in names:
            return str(name).removesuffix("_rsa")
        return str(hash_algo.fget(self))

    algos.SignedDigestAlgorithm.signature_algo = property(signature)
    algos.SignedDigestAlgorithm.hash_algo = property(digest)
    algos.SignedDigestAlgorithm.signkit_sha3 = True


PATCHES = (
    Patch(
        name="fast-hex-reader",
        distribution="pyhanko",
        versions=((0, 38), (0, 39)),
        touches=(
            ("pyhanko.pdf_utils.generic", "read_hex_string_from_stream"),
            ("pyhanko.pdf_utils.generic", "pdf_string"),
            ("pyhanko.pdf_utils.misc", "PdfStreamError"),
        ),
        install=_install_fast_hex_reader,
    ),
    Patch(
        name="name-preparation-cache",
        distribution="asn1crypto",
        versions=((1, 5), (1, 6)),
        touches=(
            ("asn1crypto.x509", "NameTypeAndValue.prepped_value"),
            ("asn1crypto.x509", "NameTypeAndValue._prepped"),
            ("asn1crypto.x509", "NameTypeAndValue._ldap_string_prep"),
        ),
        install=_install_name_cache,
    ),
    Patch(
        name="certificate-facts-cache",
        distribution="asn1crypto",
        versions=((1, 5), (1, 6)),
        touches=tuple((module, f"{cls}.{attr}") for module, cls, attr in _FACT_PROPERTIES),
        install=_install_fact_cache,
    ),
    Patch(
        name="serial-first-signer-match",
        distribution="pyhanko",
        versions=((0, 38), (0, 39)),
        touches=(("pyhanko.sign.general", "match_issuer_serial"),),
        install=_install_serial_first,
    ),
    Patch(
        name="validated-path-cache",
        distribution="pyhanko-certvalidator",
        versions=((0, 33), (0, 34)),
        touches=(
            ("pyhanko_certvalidator", "async_validate_path"),
            ("pyhanko_certvalidator", "find_valid_path"),
            ("pyhanko_certvalidator.context", "ValidationContext.fetching_allowed"),
            ("pyhanko_certvalidator.context", "ValidationContext.timing_params"),
            ("pyhanko_certvalidator.context", "ValidationContext.revinfo_policy"),
            ("pyhanko_certvalidator.context", "ValidationContext.record_validation"),
            ("pyhanko_certvalidator.context", "ValidationContext.ocsps"),
            ("pyhanko_certvalidator.context", "ValidationContext.crls"),
        ),
        install=_install_path_cache,
    ),
    Patch(
        name="rsa-sha3-identifiers",
        distribution="asn1crypto",
        versions=((1, 5), (1, 6)),
        touches=(
            ("asn1crypto.algos", "SignedDigestAlgorithmId._map"),
            ("asn1crypto.algos", "SignedDigestAlgorithmId._reverse_map"),
            ("asn1crypto.algos", "SignedDigestAlgorithm.signature_algo"),
            ("asn1crypto.algos", "SignedDigestAlgorithm.hash_algo"),
        ),
        install=_install_rsa_sha3,
    ),
)

# Private names signkit calls without patching them (checked by the same tests).
PRIVATE_USES = (
    ("pyhanko.sign.validation.ades", "_dss_to_local_knowledge"),
    ("pyhanko.sign.validation.report.tools", "_generate_report"),
    ("pyhanko.sign.validation.report.tools", "_package_validation_object"),
)


@cache
def install() -> tuple[str, ...]:
    """Put every applicable patch in place (once per process); their names."""
    done = []
    for patch in PATCHES:
        if applicable(patch):
            patch.install()
            done.append(patch.name)
    return tuple(done)
