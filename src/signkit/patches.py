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
import re
import threading
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


# ------------------------------------------------------------ pyHanko tokens

# PDF whitespace and delimiters (ISO 32000-1, 7.2.2), as pyHanko's misc has them.
_NOT_WHITESPACE = re.compile(rb"[^ \n\r\t\f\x00]")
_TOKEN_END = re.compile(rb"[ \n\r\t\f\x00()<>\[\]{}/%]")
# A name with nothing to expand or refuse: what pyHanko's decoder copies as is.
_PLAIN_NAME = re.compile(rb"[^\x00-\x20\x7f-\xff()<>\[\]{}/%#]*")
# The objects read in one pass: names, numbers, references, strings, hex
# strings, booleans and nulls, and arrays and dictionaries of them. Each
# token as pyHanko reads it: a number is the whole run of [+,-.0-9]; a name
# ends at whitespace or a delimiter; a reference is what pyHanko's
# INDIRECT_PATTERN finds in the 20 bytes it peeks at, with PDF whitespace
# only (pyHanko's own reader refuses a vertical tab before the R); a string
# has no escape and no parenthesis in it. Anything else (comments, escapes,
# nested parentheses) leaves the whole object to pyHanko.
_OBJECT_TOKEN = re.compile(
    rb"[ \n\r\t\f\x00]*(?:"
    rb"(?P<ref>(?P<id>\d+)[ \t\n\r\f]+(?P<gen>\d+)[ \t\n\r\f]+R)(?=[^a-zA-Z])"
    rb"|(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))(?![+,\-.0-9])"
    rb"|/(?P<name>[^\x00-\x20\x7f-\xff()<>\[\]{}/%#]*)(?=[ \n\r\t\f\x00()<>\[\]{}/%])"
    rb"|(?P<open>\[)|(?P<close>\])|(?P<dict><<)|(?P<end>>>)"
    rb"|\((?P<text>[^()\\]*)\)"  # a string without escapes or parentheses: its bytes
    rb"|<(?P<hex>[0-9A-Fa-f \n\r\t\f\x00]*)>"
    rb"|(?P<word>true|false|null)(?=[ \n\r\t\f\x00()<>\[\]{}/%]))"
)
_KEYWORDS = {b"true": True, b"false": False}
_REFERENCE_PEEK = 20  # pyHanko decides between a number and a reference on this many bytes
_NESTING = 32
_WINDOWS = (1 << 10, 1 << 16)
_CUT = object()  # the block ended before the object did


def read_non_whitespace(
    stream: Any, seek_back: bool = False, allow_eof: bool = False, *, original: Any
) -> bytes:
    """pyHanko's ``read_non_whitespace`` with one read and a search instead of
    a read per byte; a comment, a long run of whitespace or the end of the
    stream goes to pyHanko's own (same result, same errors)."""
    start = stream.tell()
    block: bytes = stream.read(32)
    found = _NOT_WHITESPACE.search(block)
    if found is None or block[found.start()] == 0x25:  # '%': a comment
        stream.seek(start)
        token: bytes = original(stream, seek_back=seek_back, allow_eof=allow_eof)
        return token
    at = found.start()
    stream.seek(start + at + (0 if seek_back else 1))
    return block[at : at + 1]


def read_until_delimiter(stream: Any) -> bytes:
    """pyHanko's ``read_until_delimiter`` by blocks: the bytes up to the next
    whitespace or delimiter, the stream left at it (or at the end)."""
    chunks: list[bytes] = []
    while True:
        start = stream.tell()
        block = stream.read(64)
        if not block:
            return b"".join(chunks)
        found = _TOKEN_END.search(block)
        if found is not None:
            chunks.append(block[: found.start()])
            stream.seek(start + found.start())
            return b"".join(chunks)
        chunks.append(block)


def decode_name(name_bytes: bytes, *, original: Any) -> Any:
    """pyHanko's ``_decode_name``: a name without '#' escapes or bytes it
    refuses is itself; the others go to pyHanko's decoder."""
    if _PLAIN_NAME.fullmatch(name_bytes):
        return _generic().NameObject("/" + name_bytes.decode("ascii"))
    return original(name_bytes)


def _simple_object(block: bytes, container_ref: Any, at_end: bool) -> Any:
    """The array or dictionary at ``block[0]`` and its length, if it is made
    of names, numbers, references and arrays and dictionaries of them;
    ``_CUT`` if the block ended first (and is not the stream's end); else None.
    A dictionary comes back as its entries, for pyHanko's stream reading."""
    generic = _generic()
    name_object, array_object = generic.NameObject, generic.ArrayObject
    match = _OBJECT_TOKEN.match
    looks_like_reference = generic.INDIRECT_PATTERN.match
    limit = len(block) if at_end else len(block) - _REFERENCE_PEEK - 4
    # Open arrays and dictionaries: [array, None, None] or [None, entries, key
    # awaiting its value].
    frames: list[list[Any]] = []
    at = 0
    while True:
        token = match(block, at)
        if token is None:
            return None if at_end or at < limit else _CUT
        at = token.end()
        if at > limit:
            return _CUT
        what = token.lastgroup
        value: Any
        if what == "name":
            value = name_object("/" + token.group("name").decode("ascii"))
            if frames and frames[-1][1] is not None and frames[-1][2] is None:
                entries = frames[-1][1]
                if value in entries:
                    return None  # a key given twice: pyHanko warns or refuses
                frames[-1][2] = value  # a key: pyHanko reads it as a bare name
                continue
        elif what == "num":
            text = token.group("num")
            first = token.start("num")
            if text[:1].isdigit() and looks_like_reference(block, first, first + _REFERENCE_PEEK):
                return None
            if b"." in text:
                value = generic.FloatObject(text.decode("ascii"))
            else:
                value = generic.NumberObject(text.decode("ascii"))
        elif what == "ref":
            idnum = int(token.group("id"))
            if idnum <= 0 or at + 1 - token.start("ref") > _REFERENCE_PEEK:
                return None
            value = generic.IndirectObject(
                idnum, int(token.group("gen")), container_ref.get_pdf_handler()
            )
        elif what == "text":
            value = generic.pdf_string(token.group("text"))
        elif what == "hex":
            digits = token.group("hex").translate(None, _PDF_WHITESPACE)
            if len(digits) % 2:
                digits += b"0"
            value = generic.pdf_string(binascii.unhexlify(digits))
        elif what == "word":
            word = token.group("word")
            value = (
                generic.NullObject() if word == b"null" else generic.BooleanObject(_KEYWORDS[word])
            )
        elif what == "open" or what == "dict":
            if len(frames) >= _NESTING:
                return None
            if what == "dict":
                container_ref.get_pdf_handler()  # as pyHanko's reader asks, at every dictionary
            frames.append([array_object(), None, None] if what == "open" else [None, {}, None])
            continue
        else:  # "close" or "end"
            if not frames:
                return None
            array, entries, key = frames.pop()
            if (array is not None) != (what == "close") or key is not None:
                return None  # a mismatched bracket, or a key without its value
            if not frames:
                return (array if array is not None else entries), at
            value = array if array is not None else generic.DictionaryObject(entries)
        if not frames:
            return None
        value.container_ref = container_ref
        array, entries, key = frames[-1]
        if array is not None:
            array.append(value)
        elif key is None:
            return None  # a value where a key belongs
        else:
            entries[key] = value
            frames[-1][2] = None


def _generic() -> Any:
    """pyHanko's object module (imported on first use, not with signkit)."""
    global _GENERIC
    if _GENERIC is None:
        from pyhanko.pdf_utils import generic

        _GENERIC = generic
    return _GENERIC


_GENERIC: Any = None


_DECLINED = threading.local()


def _by_pyhanko(original: Any, *args: Any, **options: Any) -> Any:
    """pyHanko's own reader for an object the one-pass reader declined, and
    for everything inside it: a nested object is not scanned again at each
    level (a hostile file nests deep, and each pass would cost a scan)."""
    depth = getattr(_DECLINED, "depth", 0)
    _DECLINED.depth = depth + 1
    try:
        return original(*args, **options)
    finally:
        _DECLINED.depth = depth


def _read_simple(stream: Any, container_ref: Any, opening: bytes) -> Any:
    """The array or dictionary at the stream's position read in one pass, the
    stream left after it; None (the stream where it was) if it is not simple."""
    if getattr(_DECLINED, "depth", 0):
        return None  # inside an object pyHanko is reading
    start = stream.tell()
    for window in _WINDOWS:
        block = stream.read(window)
        stream.seek(start)
        if not block.startswith(opening):
            return None
        found = _simple_object(block, container_ref, at_end=len(block) < window)
        if found is None:
            return None
        if found is not _CUT:
            stream.seek(start + found[1])
            return found[0]
    return None


def read_array(stream: Any, container_ref: Any, *args: Any, original: Any, **options: Any) -> Any:
    """pyHanko's ``ArrayObject.read_from_stream``, a simple array (a font's
    widths, a page's box, a list of references) in one pass instead of a
    byte at a time; any other array, or one in a content stream (where pyHanko
    reads no references), is pyHanko's."""
    mode = options.get("in_content_stream", args[0] if args else None)
    plain = mode is None or mode is _generic().ContentOpReading.NO
    found = _read_simple(stream, container_ref, b"[") if plain else None
    if found is not None:
        return found
    return _by_pyhanko(original, stream, container_ref, *args, **options)


def read_dictionary(
    stream: Any,
    container_ref: Any,
    as_metadata_stream: bool = False,
    in_content_stream: Any = None,
    *,
    original: Any,
) -> Any:
    """pyHanko's ``DictionaryObject.read_from_stream``, a simple dictionary (a
    page, a font, a descriptor, a stream's) in one pass, then pyHanko's own
    reading of a stream's data after it; any other dictionary, or one in a
    content stream, is pyHanko's."""
    generic = _generic()
    plain = in_content_stream is None or in_content_stream is generic.ContentOpReading.NO
    entries = _read_simple(stream, container_ref, b"<<") if plain else None
    if entries is None:
        options = {} if in_content_stream is None else {"in_content_stream": in_content_stream}
        return _by_pyhanko(
            original, stream, container_ref, as_metadata_stream=as_metadata_stream, **options
        )
    # From here on as pyHanko's own reader goes on after the closing ">>"
    # (the handler was asked for when the dictionary opened).
    handler = container_ref.get_pdf_handler()
    data = generic._maybe_read_stream_payload(stream, entries, handler)
    if data is None:
        return generic.DictionaryObject(entries)
    kind = generic.StreamObject
    if as_metadata_stream:
        try:
            from pyhanko.pdf_utils.metadata.xmp_xml import MetadataStream

            kind = MetadataStream
        except ImportError:  # as pyHanko: without its XMP support, a plain stream
            pass
    return kind(entries, encoded_data=data)


def _install_fast_tokens() -> None:
    import importlib

    generic: Any = importlib.import_module("pyhanko.pdf_utils.generic")
    misc: Any = importlib.import_module("pyhanko.pdf_utils.misc")

    if getattr(misc.read_non_whitespace, "signkit_fast", False):
        return
    non_whitespace = misc.read_non_whitespace
    name_decoder = generic._decode_name
    array_reader = generic.ArrayObject.read_from_stream
    dictionary_reader = generic.DictionaryObject.read_from_stream

    def skip(stream: Any, seek_back: bool = False, allow_eof: bool = False) -> bytes:
        return read_non_whitespace(stream, seek_back, allow_eof, original=non_whitespace)

    def name(name_bytes: bytes) -> Any:
        return decode_name(name_bytes, original=name_decoder)

    # Inside an object pyHanko is reading, straight to pyHanko's own reader:
    # one frame more per level of nesting, not three (Python's recursion
    # limit bounds how deep a nested object can be read).
    def array(stream: Any, container_ref: Any, *args: Any, **options: Any) -> Any:
        if getattr(_DECLINED, "depth", 0):
            return array_reader(stream, container_ref, *args, **options)
        return read_array(stream, container_ref, *args, original=array_reader, **options)

    def dictionary(stream: Any, container_ref: Any, *args: Any, **options: Any) -> Any:
        if getattr(_DECLINED, "depth", 0):
            return dictionary_reader(stream, container_ref, *args, **options)
        return read_dictionary(stream, container_ref, *args, original=dictionary_reader, **options)

    replaced: tuple[tuple[Any, Any], ...] = (
        (skip, non_whitespace),
        (name, name_decoder),
        (array, array_reader),
        (dictionary, dictionary_reader),
        (read_until_delimiter, misc.read_until_delimiter),
    )
    for fast, current in replaced:
        fast.signkit_fast = True
        fast.__wrapped_original__ = current
    misc.read_non_whitespace = generic.read_non_whitespace = skip
    misc.read_until_delimiter = generic.read_until_delimiter = read_until_delimiter
    generic._decode_name = name
    generic.ArrayObject.read_from_stream = staticmethod(array)
    generic.DictionaryObject.read_from_stream = staticmethod(dictionary)


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
    alone, and a batch's documents carry the same few certificates. The
    answer is also kept on the object, as asn1crypto keeps some of its own:
    a certificate shared across documents (``shared_certificate``) is parsed
    through, and encoding it again to look it up would cost more than the
    lookup saves.
    """
    slot = f"_signkit_{name}"

    def remembered(self: Any) -> Any:
        own = self.__dict__
        if slot in own:
            return own[slot]
        key = (name, self.dump())
        try:
            value = _FACTS[key]
        except KeyError:
            value = fget(self)
            if len(_FACTS) < _FACTS_LIMIT:
                _FACTS[key] = value
        own[slot] = value
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


# ------------------------------------------------------------ shared certificates

_SHARED: dict[bytes, Any] = {}
# A parsed certificate is a few tens of kilobytes once pyHanko has read it
# through: a thousand keep a worker small whatever the archive.
_SHARED_LIMIT = 1024


def shared_certificate(cert: Any) -> Any:
    """The first certificate object this process saw with ``cert``'s exact
    bytes, else ``cert`` itself (kept for the next, while there is room).

    Every document carries its chain again, and asn1crypto parses each copy
    lazily, field by field, as pyHanko and its path builder reach them,
    remembering on the object what it parsed. One object per encoded
    certificate parses each certificate once per process. Nothing in pyHanko
    or signkit changes a parsed certificate (none re-encodes one), so the
    object stands for its bytes alone.
    """
    from asn1crypto import x509

    if type(cert) is not x509.Certificate:
        return cert
    der = cert.dump()
    known = _SHARED.get(der)
    if known is not None:
        return known
    if len(_SHARED) < _SHARED_LIMIT:
        _SHARED[der] = cert
    return cert


def _install_shared_cms_certificates() -> None:
    from pyhanko.sign import general

    current: Any = general._partition_certs
    if getattr(current, "signkit_shared", False):
        return

    def partition(certs: Any, signer_info: Any) -> Any:
        return current([shared_certificate(c) for c in certs], signer_info)

    partition.signkit_shared = True  # type: ignore[attr-defined]
    partition.__wrapped_original__ = current  # type: ignore[attr-defined]
    general._partition_certs = partition


def _install_shared_registry_certificates() -> None:
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    current = SimpleCertificateStore.register
    if getattr(current, "signkit_shared", False):
        return

    def register(self: Any, cert: Any) -> bool:
        return bool(current(self, shared_certificate(cert)))

    register.signkit_shared = True  # type: ignore[attr-defined]
    register.__wrapped_original__ = current  # type: ignore[attr-defined]
    SimpleCertificateStore.register = register  # type: ignore[method-assign]


_MATCHES: dict[tuple[Any, ...], bool] = {}
_MATCHES_LIMIT = 4096


def serial_first(original: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """pyHanko's ``match_issuer_serial`` with the serial number compared first.

    The original compares the issuer names first, by RFC 5280's rules when
    their encodings differ (slow: asn1crypto prepares every attribute), then
    the serial; a CMS signer is looked up among all the certificates a
    document carries, and nearly every one has another serial. Both tests
    must pass, so the answer is the same.

    When the serials agree, the answer is remembered per encoded pair of
    issuers and serials: an ESS certificate identifier names its issuer
    inside a tagged GeneralName, so pyHanko's byte comparison never holds
    there and every signature and time-stamp pays for RFC 5280's rules,
    for the same few issuers.
    """

    def match_issuer_serial(expected_issuer_serial: Any, cert: Any) -> bool:
        tbs = cert["tbs_certificate"]
        if expected_issuer_serial["serial_number"] != tbs["serial_number"]:
            return False
        key = (
            type(expected_issuer_serial),
            expected_issuer_serial["issuer"].dump(),
            expected_issuer_serial["serial_number"].dump(),
            tbs["issuer"].dump(),
            tbs["serial_number"].dump(),
        )
        known = _MATCHES.get(key)
        if known is None:
            known = bool(original(expected_issuer_serial, cert))
            if len(_MATCHES) < _MATCHES_LIMIT:
                _MATCHES[key] = known
        return known

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

_PATHS: dict[tuple[Any, ...], BaseException | None] = {}
_PATHS_LIMIT = 10_000
_SCOPE: list[str] = []


@contextmanager
def remembered_paths(policy_key: str) -> Iterator[None]:
    """Within this block, certification paths validated offline are remembered.

    A path's validation depends on its certificates, the trust and algorithm
    policy (``policy_key``), the validation instant, the revocation data at
    hand, and the certificates the context can draw on to check that data
    (an OCSP responder's, a CRL issuer's); offline, all of it is what the
    documents embed, so documents signed by the same certificate with the
    same DSS contents give the same answer. Successes are remembered, and so
    are validation failures: an archive of B-LT documents fails the same way
    at the run's instant before each is judged as of its time-stamp.
    Validations that may fetch from the network, and everything outside such
    a block (the long-term process, whose proofs of existence are gathered
    along the way), run in full.
    """
    _SCOPE.append(policy_key)
    try:
        yield
    finally:
        _SCOPE.pop()


def _replayed(error: BaseException, path: Any) -> BaseException:
    """A remembered validation failure, to raise afresh for ``path``.

    A copy without traceback or cause, so that nothing accumulates on one
    object and no document's frames stay alive; where it named the validated
    path, it names ``path`` (the same certificates) instead.
    """
    copy = type(error).__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    validated = getattr(error, "original_path", None)
    if validated is not None:
        copy.original_path = path  # type: ignore[attr-defined]
        if getattr(error, "current_path", None) is validated:
            copy.current_path = path  # type: ignore[attr-defined]
    return copy


def cached_path_validation(current: Any) -> Any:
    """``current`` (certvalidator's async_validate_path), remembering answers
    inside ``remembered_paths`` blocks."""
    from pyhanko_certvalidator.errors import ValidationError

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
            frozenset(c.sha256 for c in validation_context.certificate_registry),
        )
        if key in _PATHS:
            error = _PATHS[key]
            if error is not None:
                raise _replayed(error, path)
            validation_context.record_validation(path.leaf, path)
            return path.leaf
        try:
            result = await current(validation_context, path, parameters)
        except ValidationError as error:
            if len(_PATHS) < _PATHS_LIMIT:
                _PATHS[key] = _replayed(error, path)
            raise
        if len(_PATHS) < _PATHS_LIMIT:
            _PATHS[key] = None
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
        name="fast-pdf-tokens",
        distribution="pyhanko",
        versions=((0, 38), (0, 39)),
        touches=(
            ("pyhanko.pdf_utils.misc", "read_non_whitespace"),
            ("pyhanko.pdf_utils.misc", "read_until_delimiter"),
            ("pyhanko.pdf_utils.generic", "read_non_whitespace"),
            ("pyhanko.pdf_utils.generic", "read_until_delimiter"),
            ("pyhanko.pdf_utils.generic", "_decode_name"),
            ("pyhanko.pdf_utils.generic", "ArrayObject.read_from_stream"),
            ("pyhanko.pdf_utils.generic", "DictionaryObject.read_from_stream"),
            ("pyhanko.pdf_utils.generic", "_maybe_read_stream_payload"),
            ("pyhanko.pdf_utils.generic", "INDIRECT_PATTERN"),
            ("pyhanko.pdf_utils.generic", "ContentOpReading.NO"),
            ("pyhanko.pdf_utils.generic", "IndirectObject"),
            ("pyhanko.pdf_utils.generic", "NumberObject"),
            ("pyhanko.pdf_utils.generic", "FloatObject"),
            ("pyhanko.pdf_utils.generic", "StreamObject"),
            ("pyhanko.pdf_utils.generic", "BooleanObject"),
            ("pyhanko.pdf_utils.generic", "NullObject"),
            ("pyhanko.pdf_utils.generic", "pdf_string"),
            ("pyhanko.pdf_utils.metadata.xmp_xml", "MetadataStream"),
        ),
        install=_install_fast_tokens,
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
        name="shared-cms-certificates",
        distribution="pyhanko",
        versions=((0, 38), (0, 39)),
        touches=(("pyhanko.sign.general", "_partition_certs"),),
        install=_install_shared_cms_certificates,
    ),
    Patch(
        name="shared-registry-certificates",
        distribution="pyhanko-certvalidator",
        versions=((0, 33), (0, 34)),
        touches=(("pyhanko_certvalidator.registry", "SimpleCertificateStore.register"),),
        install=_install_shared_registry_certificates,
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
            ("pyhanko_certvalidator.context", "ValidationContext.certificate_registry"),
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
