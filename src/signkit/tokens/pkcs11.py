"""The only module that talks PKCS#11 (through python-pkcs11).

Everything above sees ``TokenInfo``/``CertInfo``/``KeyInfo`` data and the
``Signer`` protocol. Every python-pkcs11 exception is wrapped into a
``TokenError`` subclass here, so callers never meet a raw PKCS#11 error.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pkcs11
import pkcs11.exceptions as p11e
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag
from pkcs11.types import PROTECTED_AUTH

from signkit.errors import (
    KeyNotFoundError,
    ModuleLoadError,
    PinUnavailableError,
    TokenAbsentError,
    TokenAmbiguousError,
    TokenError,
    TokenNotFoundError,
    TokenOperationError,
)
from signkit.pki.certs import (
    describe_certificate,
    public_key_id_from_ec_point,
    public_key_id_from_rsa,
)
from signkit.tokens.ckr import ckr_of, describe_ckr
from signkit.tokens.diagnose import module_family, start_failure_hint
from signkit.tokens.model import (
    CertInfo,
    KeyInfo,
    KeyPair,
    KeySelector,
    PublicObjects,
    TokenFlags,
    TokenInfo,
)
from signkit.tokens.p11errors import wrap_pkcs11_error
from signkit.tokens.pairing import pair_keys
from signkit.tokens.pin import Pin
from signkit.tokens.rawcalls import RawCalls
from signkit.tokens.token_signer import TokenSigner

T = TypeVar("T")


_EC_CURVE_BITS = {
    # DER of the named-curve OIDs as found in CKA_EC_PARAMS.
    bytes.fromhex("06082a8648ce3d030107"): 256,  # P-256
    bytes.fromhex("06052b81040022"): 384,  # P-384
    bytes.fromhex("06052b81040023"): 521,  # P-521
    bytes.fromhex("06052b8104000a"): 256,  # secp256k1
}


# Transient failures worth another try while opening (never a PIN error).
_TRANSIENT_AT_OPEN = frozenset({0x005, 0x006, 0x030, 0x0B1, 0x0E1})


OPEN_ATTEMPTS = 4


_OPEN_BACKOFF = 0.2


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip(" \x00")
    return str(value).rstrip(" \x00")


def _flags(raw: int) -> TokenFlags:
    return TokenFlags(
        login_required=bool(raw & TokenFlag.LOGIN_REQUIRED),
        protected_auth_path=bool(raw & TokenFlag.PROTECTED_AUTHENTICATION_PATH),
        user_pin_count_low=bool(raw & TokenFlag.USER_PIN_COUNT_LOW),
        user_pin_final_try=bool(raw & TokenFlag.USER_PIN_FINAL_TRY),
        user_pin_locked=bool(raw & TokenFlag.USER_PIN_LOCKED),
        user_pin_to_be_changed=bool(raw & TokenFlag.USER_PIN_TO_BE_CHANGED),
        initialized=bool(raw & TokenFlag.TOKEN_INITIALIZED),
        write_protected=bool(raw & TokenFlag.WRITE_PROTECTED),
        user_pin_initialized=bool(raw & TokenFlag.USER_PIN_INITIALIZED),
    )


def _attributes(obj: Any, keys: Sequence[Attribute]) -> dict[Attribute, Any]:
    """Read attributes in one call; fall back one by one when a token refuses some."""
    try:
        return dict(obj.get_attributes(list(keys)))
    except p11e.PKCS11Error:
        values: dict[Attribute, Any] = {}
        for key in keys:
            try:
                values[key] = obj[key]
            except p11e.PKCS11Error:
                continue
        return values


# openCryptoki 3.8 opens its API lock file at the first C_Initialize of a
# process and closes that descriptor number at every C_Finalize: from the second
# C_Finalize on it closes whatever file now has the number (an audit log, a
# lock). It is initialised once and finalised when the process exits.
_FINALISE_AT_EXIT = frozenset({"opencryptoki"})


_AT_EXIT: set[int] = set()


def _finalise_quietly(lib: Any) -> None:
    if not lib.initialized:
        return
    try:
        lib.finalize()
    except Exception:  # noqa: S110 - finalising a dying module must not mask the cause
        pass


def _retry_transient(call: Callable[[], T], *, subject: str, action: str) -> T:
    """``call()``, tried again after a short, growing pause when the token answers
    with a transient error (CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_DEVICE_ERROR,
    CKR_SESSION_COUNT, CKR_TOKEN_NOT_RECOGNIZED); anything else, and above all a PIN
    error, is raised at once. Used only while opening, never around C_Login."""
    attempt = 1
    while True:
        try:
            return call()
        except p11e.PKCS11Error as exc:
            if ckr_of(exc) not in _TRANSIENT_AT_OPEN or attempt >= OPEN_ATTEMPTS:
                raise wrap_pkcs11_error(exc, subject=subject, action=action) from exc
        time.sleep(_OPEN_BACKOFF * 2 ** (attempt - 1))
        attempt += 1


def _has_public_match(info: TokenInfo, token: Any, selector: KeySelector) -> bool:
    """Whether the token's public objects could satisfy the key criteria."""
    try:
        with TokenSession.public(info, token) as ts:
            return selector.matches_public(ts.public_objects())
    except TokenError:
        return False


def _unwrap_octet_string(point: bytes) -> bytes:
    # CKA_EC_POINT is DER OCTET STRING wrapping the point; some tokens omit the wrapper.
    if len(point) > 2 and point[0] == 0x04 and point[1] in (0x41, 0x61, 0x81):
        if point[1] == 0x81 and len(point) == point[2] + 3:
            return point[3:]
        if point[1] != 0x81 and len(point) == point[1] + 2:
            return point[2:]
    return point


class Pkcs11Module:
    """A loaded PKCS#11 library. Use ``Pkcs11Module.load`` so it is always finalised."""

    def __init__(self, path: str, lib: Any) -> None:
        self.path = path
        self._lib = lib
        self._raw: RawCalls | None = None

    @classmethod
    @contextmanager
    def load(cls, path: str) -> Iterator[Pkcs11Module]:
        """Load and initialise ``path``; C_Finalize on every exit path (for
        openCryptoki, once, at process exit: see ``_FINALISE_AT_EXIT``)."""
        lib = cls._initialise(path)
        try:
            yield cls(path, lib)
        finally:
            if module_family(path) in _FINALISE_AT_EXIT:
                if id(lib) not in _AT_EXIT:
                    _AT_EXIT.add(id(lib))
                    atexit.register(_finalise_quietly, lib)
            else:
                _finalise_quietly(lib)

    @staticmethod
    def _initialise(path: str) -> Any:
        attempt = 1
        while True:
            try:
                # One library object per file, however the path is spelt (python-pkcs11
                # caches by the string; a second object would C_Initialize again).
                return pkcs11.lib(os.path.realpath(path))
            except (RuntimeError, OSError, p11e.PKCS11Error) as exc:
                code = ckr_of(exc)
                if code is None:
                    # dlopen or symbol lookup failed: not a module this process can load.
                    raise ModuleLoadError(
                        f"cannot load PKCS#11 module ({str(exc)[:200]})",
                        subject=path,
                        hint="check the path and that it is a PKCS#11 library for this "
                        "architecture, with its dependencies installed",
                    ) from exc
                if code not in _TRANSIENT_AT_OPEN or attempt >= OPEN_ATTEMPTS:
                    raise ModuleLoadError(
                        f"the module failed to start: {describe_ckr(code)}",
                        subject=path,
                        hint=start_failure_hint(path),
                    ) from exc
            time.sleep(_OPEN_BACKOFF * 2 ** (attempt - 1))
            attempt += 1

    @property
    def raw(self) -> RawCalls:
        """The module's function list through ctypes (made on first use)."""
        if self._raw is None:
            self._raw = RawCalls(self.path)
        return self._raw

    def library_info(self) -> dict[str, str]:
        """Manufacturer, description and versions of the library."""
        lib = self._lib
        return {
            "manufacturer": _text(lib.manufacturer_id),
            "description": _text(lib.library_description),
            "library_version": "{}.{}".format(*lib.library_version),
            "cryptoki_version": "{}.{}".format(*lib.cryptoki_version),
        }

    def _present(self) -> list[tuple[TokenInfo, Any]]:
        slots = _retry_transient(
            lambda: self._lib.get_slots(token_present=True),
            subject=self.path,
            action="listing slots",
        )
        found = []
        for slot in slots:
            try:
                token = slot.get_token()
            except (p11e.TokenNotPresent, p11e.TokenNotRecognised):
                continue
            except p11e.PKCS11Error as exc:
                raise wrap_pkcs11_error(exc, subject=self.path, action="reading a token") from exc
            found.append((self._token_info(slot, token), token))
        return found

    def _token_info(self, slot: Any, token: Any) -> TokenInfo:
        slot_id = int(slot.slot_id)
        try:
            pin_min, pin_max = self.raw.pin_lengths(slot_id)
        except TokenError:
            pin_min = pin_max = None
        return TokenInfo(
            module=self.path,
            slot_id=slot_id,
            slot_description=_text(slot.slot_description),
            label=_text(token.label),
            manufacturer=_text(token.manufacturer_id),
            model=_text(token.model),
            serial=_text(token.serial),
            flags=_flags(int(token.flags)),
            pin_min=pin_min,
            pin_max=pin_max,
            slot_manufacturer=_text(slot.manufacturer_id),
        )

    def list_tokens(self) -> list[TokenInfo]:
        """Tokens present in the module's slots."""
        return [info for info, _ in self._present()]

    def list_tokens_with_objects(self) -> list[tuple[TokenInfo, PublicObjects | None]]:
        """Tokens present, with the public objects of each usable one (for discovery)."""
        result: list[tuple[TokenInfo, PublicObjects | None]] = []
        for info, token in self._present():
            objects = None
            if info.flags.usable:
                try:
                    with TokenSession.public(info, token) as ts:
                        objects = ts.public_objects()
                except TokenError:
                    objects = None
            result.append((info, objects))
        return result

    def find_tokens(self, selector: KeySelector) -> list[tuple[TokenInfo, Any]]:
        """Tokens matching the token criteria of ``selector``.

        An uninitialised token (a free SoftHSM slot, a blank card) holds no keys
        and is never a match. When several match, those a user could sign with
        (user PIN set) win over those that cannot, as in discovery.
        """
        if selector.library_mismatch(self.library_info()) is not None:
            return []
        matches = [
            (info, tok)
            for info, tok in self._present()
            if info.flags.initialized and selector.matches_token(info)
        ]
        usable = [(info, tok) for info, tok in matches if info.flags.usable]
        return usable if len(matches) > 1 and usable else matches

    @contextmanager
    def open_token(self, selector: KeySelector) -> Iterator[TokenSession]:
        """Open a public session on the one token the selector names."""
        present = self.list_tokens()
        matches = self.find_tokens(selector)
        if not present:
            # Nothing in any slot: unplugged, which passes (exit 75), unlike a
            # token that is there but is not the one asked for.
            raise TokenAbsentError(
                f"no token present (looking for {selector.describe()})",
                subject=self.path,
                hint="plug the token in, or check `signkit token list`",
            )
        if not matches:
            listing = "; ".join(t.display_name() for t in present) or "none"
            why = selector.library_mismatch(self.library_info())
            if why is not None:
                listing += f"; {why}"
            raise TokenNotFoundError(
                f"no token matches {selector.describe()} (present: {listing})",
                subject=self.path,
                hint="plug the token in, or check `signkit token list`",
            )
        if len(matches) > 1 and selector.has_key_criteria():
            narrowed = [(i, t) for i, t in matches if _has_public_match(i, t, selector)]
            matches = narrowed or matches
        if len(matches) > 1:
            listing = "; ".join(i.display_name() for i, _ in matches)
            raise TokenAmbiguousError(
                f"{len(matches)} tokens match {selector.describe()}: {listing}",
                subject=self.path,
                hint="choose one with --token-label, --token-serial or --slot",
            )
        info, token = matches[0]
        session = TokenSession(self, info, token)
        try:
            yield session
        finally:
            session.close()


class TokenSession:
    """One token with one session: public until ``login``, then the user's."""

    def __init__(self, module: Pkcs11Module | None, info: TokenInfo, token: Any) -> None:
        self.module = module
        self.info = info
        self._token = token
        self._session: Any = None
        self._logged_in = False
        self._mechanisms: frozenset[Mechanism] | None = None
        self._certs: list[CertInfo] | None = None
        self._session = _retry_transient(
            token.open, subject=info.display_name(), action="opening a session"
        )

    @classmethod
    @contextmanager
    def public(cls, info: TokenInfo, token: Any) -> Iterator[TokenSession]:
        """A short-lived public session (for narrowing a selection)."""
        ts = cls(None, info, token)
        try:
            yield ts
        finally:
            ts.close()

    @property
    def name(self) -> str:
        """Human name of the token."""
        return self.info.display_name()

    def close(self) -> None:
        """Close the session (idempotent, never raises)."""
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: S110 - closing must not mask the real error
                pass

    def _objects(self, cls: ObjectClass) -> list[Any]:
        try:
            return list(self._session.get_objects({Attribute.CLASS: cls}))
        except p11e.PKCS11Error as exc:
            raise wrap_pkcs11_error(exc, subject=self.name, action="listing objects") from exc

    def certificates(self) -> list[CertInfo]:
        """X.509 certificates on the token (no login needed; read once per session)."""
        if self._certs is None:
            self._certs = self._read_certificates()
        return self._certs

    def _read_certificates(self) -> list[CertInfo]:
        certs = []
        for obj in self._objects(ObjectClass.CERTIFICATE):
            attrs = _attributes(obj, (Attribute.VALUE, Attribute.LABEL, Attribute.ID))
            der = attrs.get(Attribute.VALUE)
            if not der:
                continue
            try:
                certs.append(
                    describe_certificate(
                        bytes(der),
                        label=_text(attrs.get(Attribute.LABEL, "")),
                        id=bytes(attrs.get(Attribute.ID, b"")),
                    )
                )
            except TokenError:
                raise
            except Exception:  # noqa: S112 - a malformed certificate object is skipped, not fatal
                continue
        return certs

    def _key_info(self, obj: Any, *, private: bool) -> KeyInfo:
        wanted = [Attribute.LABEL, Attribute.ID, Attribute.KEY_TYPE]
        if private:
            wanted.append(Attribute.ALWAYS_AUTHENTICATE)
        attrs = _attributes(obj, wanted)
        key_type = attrs.get(Attribute.KEY_TYPE)
        size: int | None = None
        pkid: str | None = None
        if key_type == KeyType.RSA:
            rsa = _attributes(obj, (Attribute.MODULUS,))
            modulus = rsa.get(Attribute.MODULUS)
            if modulus:
                n = int.from_bytes(bytes(modulus), "big")
                size = n.bit_length()
                pkid = public_key_id_from_rsa(n)
        elif key_type == KeyType.EC:
            ec = _attributes(obj, (Attribute.EC_PARAMS, Attribute.EC_POINT))
            size = _EC_CURVE_BITS.get(bytes(ec.get(Attribute.EC_PARAMS, b"")))
            point = ec.get(Attribute.EC_POINT)
            if point:
                pkid = public_key_id_from_ec_point(_unwrap_octet_string(bytes(point)))
        names = {KeyType.RSA: "RSA", KeyType.EC: "EC"}
        type_name = names[key_type] if key_type in names else str(key_type)
        return KeyInfo(
            label=_text(attrs.get(Attribute.LABEL, "")),
            id=bytes(attrs.get(Attribute.ID, b"")),
            key_type=type_name,
            key_size=size,
            private=private,
            always_authenticate=bool(attrs.get(Attribute.ALWAYS_AUTHENTICATE, False)),
            public_key_id=pkid,
        )

    def public_keys(self) -> list[KeyInfo]:
        """Public key objects (no login needed)."""
        return [self._key_info(o, private=False) for o in self._objects(ObjectClass.PUBLIC_KEY)]

    def private_keys(self) -> list[KeyInfo]:
        """Private key objects (usually visible only after login)."""
        return [self._key_info(o, private=True) for o in self._objects(ObjectClass.PRIVATE_KEY)]

    def public_objects(self) -> PublicObjects:
        """Certificates and public keys, as discovery and selection see them before login."""
        return PublicObjects(
            certificates=tuple((c.label, c.id.hex(), c.sha256) for c in self.certificates()),
            public_keys=tuple((k.label, k.id.hex()) for k in self.public_keys()),
        )

    def pairs(self) -> list[KeyPair]:
        """Private keys paired with their certificates."""
        return pair_keys(self.private_keys(), self.certificates(), self.public_keys())

    def mechanisms(self) -> frozenset[Mechanism]:
        """Mechanisms the token offers (read once)."""
        if self._mechanisms is None:
            try:
                self._mechanisms = frozenset(self._token.slot.get_mechanisms())
            except p11e.PKCS11Error as exc:
                raise wrap_pkcs11_error(
                    exc, subject=self.name, action="listing mechanisms"
                ) from exc
        return self._mechanisms

    def signing_mechanism_names(self) -> list[str]:
        """Public-key signature mechanisms the token can sign with (CKF_SIGN), for people.

        By CKF_SIGN, not by name: a token lists RSA key generation and RSA
        encryption mechanisms too. MACs (HMAC, SSL3) carry CKF_SIGN but make
        no document signature, so only RSA, ECDSA and EdDSA ones are shown.
        """
        names = []
        for mech in sorted(self.mechanisms(), key=int):
            name = getattr(mech, "name", None) or f"0x{int(mech):08x}"
            if not any(kind in name for kind in ("RSA", "ECDSA", "EDDSA")):
                continue
            try:
                flags = self._token.slot.get_mechanism_info(mech).flags
            except p11e.PKCS11Error:
                continue
            if flags & MechanismFlag.SIGN:
                names.append(name)
        return names

    def refresh_flags(self) -> TokenFlags:
        """Read the token flags again (after a failed login)."""
        try:
            return _flags(int(self._token.slot.get_token().flags))
        except p11e.PKCS11Error as exc:
            raise wrap_pkcs11_error(exc, subject=self.name, action="reading flags") from exc

    def login(self, pin: Pin | None) -> None:
        """Exactly one C_Login as the user; ``None`` uses the PIN pad."""
        if self._logged_in:
            return
        try:
            user_pin: Any = PROTECTED_AUTH if pin is None else pin.reveal()
            session = self._token.open(user_pin=user_pin)
        except p11e.PKCS11Error as exc:
            raise wrap_pkcs11_error(exc, subject=self.name, action="logging in") from exc
        self.close()
        self._session = session
        self._logged_in = True

    def signer(
        self,
        pair: KeyPair,
        *,
        context_pin: Pin | None = None,
        allow_sha1: bool = False,
        pinpad: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> TokenSigner:
        """A Signer for ``pair`` on this (logged-in) session.

        A CKA_ALWAYS_AUTHENTICATE key logs in again before every signature:
        with the kept PIN, or, after a PIN-pad login, on the pad each time.
        ``warn`` hears once if the token refuses those logins.
        """
        if pair.cert is None:
            raise KeyNotFoundError("the key has no certificate", subject=self.name)
        per_signature_pad = pair.key.always_authenticate and context_pin is None
        if per_signature_pad and not pinpad:
            raise PinUnavailableError(
                "the key needs a login before every signature "
                "(CKA_ALWAYS_AUTHENTICATE), but no PIN is kept for it",
                subject=self.name,
            )
        handle = self._find_private_key(pair.key)
        chain = tuple(
            c.der for c in self.certificates() if c.is_ca and c.sha256 != pair.cert.sha256
        )
        return TokenSigner(
            session=self,
            key=handle,
            info=pair.key,
            certificate_der=pair.cert.der,
            chain_der=chain,
            context_pin=context_pin if pair.key.always_authenticate else None,
            allow_sha1=allow_sha1,
            pinpad_per_signature=per_signature_pad,
            warn=warn,
        )

    def raw_context_sign(
        self, key: Any, mechanism: int, data: bytes, pin: bytes | None
    ) -> tuple[bytes, bool]:
        """Sign with a context-specific login made through ``RawCalls``; also says
        whether the token refused that login (CKR_USER_TYPE_INVALID)."""
        if self.module is None:  # pragma: no cover - signing sessions always have a module
            raise TokenOperationError("no module for a raw call", subject=self.name)
        return self.module.raw.context_sign(
            int(self._session.handle), int(key.handle), mechanism, data, pin=pin, name=self.name
        )

    def _find_private_key(self, key: KeyInfo) -> Any:
        for obj in self._objects(ObjectClass.PRIVATE_KEY):
            if self._key_info(obj, private=True) == key:
                return obj
        raise KeyNotFoundError("the selected key vanished from the token", subject=self.name)
