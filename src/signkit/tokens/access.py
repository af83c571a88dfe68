"""Open the token and key a command needs: module, token, one login, key pair.

This is the API the batch engine and the CLI call; it owns the order of the
PIN-safety rules so no caller can skip one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from signkit.errors import (
    ModuleLoadError,
    PinError,
    TokenAbsentError,
    TokenAmbiguousError,
    TokenNotFoundError,
)
from signkit.tokens.discovery import (
    DEFAULT_PROBE_TIMEOUT,
    ModuleCandidate,
    ProbeResult,
    discover_modules,
    explicit_module,
    probe_module,
)
from signkit.tokens.guard import PinGuard
from signkit.tokens.lock import module_lock
from signkit.tokens.model import KeyPair, KeySelector, TokenInfo
from signkit.tokens.pin import LoginResult, Pin, PinIO, PinSourceKind, PinSpec, login
from signkit.tokens.signer import Signer

if TYPE_CHECKING:
    from signkit.tokens.pkcs11 import TokenSession


@dataclass(frozen=True, kw_only=True)
class TokenSpec:
    """Which module, token and key to use, and how to get the PIN."""

    module: str | None = None
    """Explicit PKCS#11 module path; None = discover."""
    selector: KeySelector = field(default_factory=KeySelector)
    """Token and key criteria."""
    pin: PinSpec = field(default_factory=PinSpec)
    """PIN source."""
    allow_sha1: bool = False
    """Permit SHA-1 signatures (unsafe; legacy tests only)."""
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    """Seconds a discovered module may take to list its tokens."""


@dataclass(frozen=True, kw_only=True)
class ModuleScan:
    """Every module considered and what probing it found."""

    results: tuple[ProbeResult, ...]
    """One result per candidate, in discovery order."""


def scan_modules(
    spec: TokenSpec,
    *,
    discover: Callable[[], list[ModuleCandidate]] = discover_modules,
) -> ModuleScan:
    """Probe the explicit module, or every discovered one, in child processes."""
    candidates = [explicit_module(spec.module)] if spec.module else discover()
    if not candidates:
        raise ModuleLoadError(
            "no PKCS#11 module found (none registered with p11-kit, none at the known paths)",
            subject="token driver",
            hint="install the token's driver, or pass --module /path/to/pkcs11.so",
        )
    return ModuleScan(
        results=tuple(probe_module(c, timeout=spec.probe_timeout) for c in candidates)
    )


def resolve_module(
    spec: TokenSpec,
    *,
    discover: Callable[[], list[ModuleCandidate]] = discover_modules,
) -> str:
    """The module to load in-process: the explicit one, or the one discovered module
    whose tokens match the token criteria."""
    if spec.module:
        return explicit_module(spec.module).path
    scan = scan_modules(spec, discover=discover)
    return choose_module(scan, spec.selector)


def choose_module(scan: ModuleScan, sel: KeySelector) -> str:
    """The one module holding a token the user could sign with that fits ``sel``.

    Only tokens that could sign count: initialised, with a user PIN and a
    certificate (a blank slot of another module does not make the choice
    ambiguous); the key criteria then narrow by the certificates and public
    keys each token shows. ``signkit token list`` marks the tokens that do not
    count.
    """

    def candidates(r: ProbeResult, *, by_key: bool) -> bool:
        for t in r.tokens:
            objects = r.objects.get(t.slot_id)
            if not (t.flags.usable and sel.matches_token(t)):
                continue
            if objects is not None and not objects.certificates:
                continue  # nothing on it to sign with
            if by_key and objects is not None and not sel.matches_public(objects):
                continue
            return True
        return False

    hits = [
        r
        for r in scan.results
        if sel.library_mismatch(r.library) is None and candidates(r, by_key=False)
    ]
    if len(hits) > 1 and sel.has_key_criteria():
        hits = [r for r in hits if candidates(r, by_key=True)] or hits
    if len(hits) == 1:
        return hits[0].candidate.path
    if not hits:
        problems = "; ".join(
            f"{r.candidate.path}: {r.error or 'no matching token'}" for r in scan.results
        )
        if not any(r.tokens for r in scan.results):
            raise TokenAbsentError(
                f"no token present in any module ({problems})",
                subject="token",
                hint="plug the token in; `signkit token list` shows what each module sees",
            )
        raise TokenNotFoundError(
            f"no token matches {sel.describe()} in any module ({problems})",
            subject="token",
            hint="plug the token in; `signkit token list` shows what each module sees",
        )
    raise TokenAmbiguousError(
        "tokens matching the selection were found in several modules: "
        + ", ".join(r.candidate.path for r in hits),
        subject="token",
        hint="pass --module to choose one",
    )


@contextmanager
def open_token_session(path: str, selector: KeySelector) -> Iterator[TokenSession]:
    """Load ``path`` and open a public session on the token ``selector`` names.

    Loading and opening happen under the module's lock (see ``tokens.lock``);
    the session then lives on without it. Log in with ``locked_login``.
    """
    from signkit.tokens.pkcs11 import Pkcs11Module

    with ExitStack() as stack:
        with module_lock(path):
            module = stack.enter_context(Pkcs11Module.load(path))
            session = stack.enter_context(module.open_token(selector))
        yield session


def locked_login(session: TokenSession) -> Callable[[Pin | None], None]:
    """``session.login`` under the module's lock (the PIN prompt stays outside it)."""
    path = session.module.path if session.module is not None else session.info.module

    def do_login(pin: Pin | None) -> None:
        with module_lock(path):
            session.login(pin)

    return do_login


@dataclass(frozen=True, kw_only=True)
class OpenedKey:
    """What a signing run holds for its whole duration."""

    signer: Signer
    """The Signer (a TokenSigner for PKCS#11)."""
    pair: KeyPair
    """The selected key and certificate."""
    login: LoginResult
    """How the one login went."""
    token_name: str
    """Human name of the token."""
    token: TokenInfo | None = None
    """The token's identity (label, serial, model), for audit records."""


@contextmanager
def open_signing_key(
    spec: TokenSpec,
    *,
    io: PinIO,
    guard: PinGuard,
    warn: Callable[[str], None],
    module_path: str | None = None,
    on_login_failure: Callable[[TokenInfo, PinError], None] | None = None,
) -> Iterator[OpenedKey]:
    """Load the module, open the token, log in once, select the key; clean up always.

    ``on_login_failure`` hears of a refused login (the audit log's record of
    it) before the error propagates; it is never given the PIN."""
    from signkit.tokens.pairing import select_pair

    path = module_path or resolve_module(spec)
    with open_token_session(path, spec.selector) as session:
        try:
            result = login(
                token=session.info,
                spec=spec.pin,
                io=io,
                guard=guard,
                do_login=locked_login(session),
                refresh_flags=session.refresh_flags,
                warn=warn,
                keep_pin=True,
            )
        except PinError as exc:
            if on_login_failure is not None:
                on_login_failure(session.info, exc)
            raise
        pair = select_pair(session.pairs(), spec.selector, token=session.name)
        signer = session.signer(
            pair,
            context_pin=result.pin,
            allow_sha1=spec.allow_sha1,
            pinpad=result.source is PinSourceKind.PINPAD,
            warn=warn,
        )
        yield OpenedKey(
            signer=signer, pair=pair, login=result, token_name=session.name, token=session.info
        )
