"""The token layer on two real PKCS#11 implementations: SoftHSM and openCryptoki.

Both hold the tokens of softhsm/layout.toml (openCryptoki's soft token,
behind pkcsslotd, is built by testtokens/opencryptoki.py). Every test that
takes the ``tokens`` fixture runs on both; a test marked ``only(impl, why)``
exercises something only that implementation has, for real: openCryptoki
counts wrong PINs down to "locked" and refuses the per-signature login of
always-authenticate keys, SoftHSM can model a token without hash mechanisms.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from signkit.errors import (
    KeyAmbiguousError,
    KeyNotFoundError,
    MechanismError,
    PinFinalTryError,
    PinIncorrectError,
    TokenAmbiguousError,
    TokenNotFoundError,
)
from signkit.tokens.access import TokenSpec, open_signing_key, resolve_module
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import KeySelector, TokenFlags
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec, login
from signkit.tokens.pkcs11 import Pkcs11Module
from signkit.tokens.uri import parse_pkcs11_uri
from support.infra import (
    FIXTURES,
    REPO,
    OpenCryptoki,
    SoftHsm,
    TokenImpl,
    pki_certificate,
    spy_calls,
    spy_module,
)
from support.pdfcheck import assert_signed_ok
from support.runner import Runner
from support.xmlcheck import assert_xmlsec_ok

pytestmark = pytest.mark.softhsm

TOKENS = {"signkit-demo", "signkit-test-a", "signkit-test-b", "signkit-test-c"}
WRONG_PIN = "904417"


@dataclass(frozen=True)
class Traits:
    """What tells the implementations apart, as the tests below find it."""

    manufacturer: str
    model: str
    library: str
    ecdsa: bool
    """Offers an ECDSA mechanism (openCryptoki 3.8's soft token has none)."""
    rsa_hash_on_token: bool
    """Offers CKM_SHA256_RSA_PKCS (openCryptoki's soft token: only raw RSA and PSS)."""
    context_login: bool
    """Accepts the context-specific login of an always-authenticate key."""
    pin_range: tuple[int, int]
    """ulMinPinLen, ulMaxPinLen."""
    scratch: str
    """A token a test may take to 'few tries left' (reset afterwards)."""


TRAITS = {
    "softhsm": Traits(
        manufacturer="SoftHSM project",
        model="SoftHSM v2",
        library="SoftHSM",
        ecdsa=True,
        rsa_hash_on_token=True,
        context_login=True,
        pin_range=(4, 255),
        scratch="signkit-demo",
    ),
    "opencryptoki": Traits(
        manufacturer="IBM Corp.",
        model="IBM SoftTok",
        library="IBM",
        ecdsa=False,
        rsa_hash_on_token=False,
        context_login=False,
        pin_range=(4, 8),
        scratch="signkit-scratch",
    ),
}


class NoTerminal:
    """PinIO for tests: nobody at the keyboard."""

    def interactive(self) -> bool:
        return False

    def prompt_pin(self, prompt: str) -> str:
        raise AssertionError("must not prompt")

    def confirm(self, question: str) -> bool:
        raise AssertionError("must not ask")

    def read_stdin_pin(self) -> str:
        raise AssertionError("must not read stdin")


class Person:
    """PinIO for the interactive paths: the person types ``typed`` and answers ``answer``.

    Only the person is simulated; the token and its counters are real."""

    def __init__(self, *, typed: str, answer: bool) -> None:
        self.typed = typed
        self.answer = answer
        self.questions: list[str] = []

    def interactive(self) -> bool:
        return True

    def prompt_pin(self, prompt: str) -> str:
        return self.typed

    def confirm(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def read_stdin_pin(self) -> str:
        raise AssertionError("must not read stdin")


def spec(impl: TokenImpl, **selector: object) -> TokenSpec:
    return TokenSpec(
        module=impl.module,
        selector=KeySelector(**selector),  # type: ignore[arg-type]
        pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(impl.user_pin)),
    )


def open_key(impl: TokenImpl, tmp_path: Path, warn=None, **selector: object):  # type: ignore[no-untyped-def]
    return open_signing_key(
        spec(impl, **selector),
        io=NoTerminal(),
        guard=PinGuard(tmp_path),
        warn=warn or (lambda s: None),
    )


def verify(
    cert_der: bytes, data: bytes, sig: bytes, scheme: str, algo: hashes.HashAlgorithm
) -> None:
    key = x509.load_der_x509_certificate(cert_der).public_key()
    if scheme == "ecdsa":
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(sig, data, ec.ECDSA(algo))
    elif scheme == "pss":
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(sig, data, padding.PSS(padding.MGF1(algo), algo.digest_size), algo)
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(sig, data, padding.PKCS1v15(), algo)


def flags_of(impl: TokenImpl, label: str) -> TokenFlags:
    with Pkcs11Module.load(impl.module) as module:
        return next(t for t in module.list_tokens() if t.label == label).flags


def spy_env(impl: TokenImpl, log: Path) -> dict[str, str]:
    return {"PKCS11SPY": impl.module, "PKCS11SPY_OUTPUT": str(log)}


def logins(log: Path) -> int:
    return sum(1 for name, _ in spy_calls(log) if name == "C_Login")


@pytest.fixture
def scratch(tokens: TokenImpl) -> object:
    """The implementation's scratch token, with a clean PIN counter before and after."""
    label = TRAITS[tokens.name].scratch
    _reset(tokens, label)
    yield label
    _reset(tokens, label)


def _reset(impl: TokenImpl, label: str) -> None:
    if isinstance(impl, OpenCryptoki):
        impl.reset_pin(label)
    else:  # SoftHSM clears "few tries left" at the next good login
        with Pkcs11Module.load(impl.module) as module:
            with module.open_token(KeySelector(token_label=label)) as session:
                session.login(Pin(impl.user_pin))


# ------------------------------------------------------------------ listing


def test_lists_every_token_with_flags(tokens: TokenImpl) -> None:
    traits = TRAITS[tokens.name]
    with Pkcs11Module.load(tokens.module) as module:
        listed = {t.label: t for t in module.list_tokens()}
        info = module.library_info()
    assert TOKENS <= set(listed)
    demo = listed["signkit-demo"]
    assert (demo.manufacturer, demo.model) == (traits.manufacturer, traits.model)
    assert demo.flags.login_required and demo.flags.initialized
    assert demo.flags.user_pin_initialized and demo.flags.usable
    assert not demo.flags.user_pin_locked
    assert (demo.pin_min, demo.pin_max) == traits.pin_range
    assert traits.library in info["manufacturer"]
    if tokens.name == "opencryptoki":
        # the serial says nothing: every openCryptoki soft token is "123"
        assert {listed[label].serial for label in TOKENS} == {"123"}


def test_objects_without_login_show_certificates_not_private_keys(tokens: TokenImpl) -> None:
    with Pkcs11Module.load(tokens.module) as module:
        with module.open_token(KeySelector(token_label="signkit-test-a")) as session:
            certs = session.certificates()
            privates = session.private_keys()
            publics = session.public_keys()
    labels = {c.label for c in certs}
    assert "Nguyễn Văn An's Test-CA SHA2 Certificate" in labels
    assert privates == []  # CKA_PRIVATE keys are invisible before login
    assert {k.label for k in publics} == {"signer-rsa2048", "key-vn", "signer-ec256"}
    vn = next(c for c in certs if c.id == b"\x02")
    assert vn.sha256 == hashlib.sha256(pki_certificate("signer-vn")).hexdigest()
    assert "CN=Nguyễn Văn An" in vn.subject and "UID=MST:0100000000-999" in vn.subject
    assert vn.key_usage == ("digitalSignature", "nonRepudiation")
    ec_pub = next(k for k in publics if k.label == "signer-ec256")
    assert (ec_pub.key_type, ec_pub.key_size) == ("EC", 256)


def test_token_info_lists_only_signing_mechanisms(tokens: TokenImpl, signkit_on: Runner) -> None:
    """Regression (issue 19): key generation and encryption mechanisms were listed
    as "signing mechanisms" (chosen by name, not by CKF_SIGN)."""
    proc = signkit_on(
        "token", "info", "--module", tokens.module, "--token-label", "signkit-demo", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    listed = set(data["mechanisms"])
    with Pkcs11Module.load(tokens.module) as module:
        with module.open_token(KeySelector(token_label="signkit-demo")) as session:
            offered = {m.name for m in session.mechanisms()}
    # the token offers them, and they cannot sign
    assert {"RSA_PKCS_KEY_PAIR_GEN", "RSA_PKCS_OAEP"} <= offered
    assert not listed & {"RSA_PKCS_KEY_PAIR_GEN", "RSA_PKCS_OAEP", "EC_KEY_PAIR_GEN"}
    assert "RSA_PKCS" in listed and "SHA256_RSA_PKCS_PSS" in listed
    assert ("SHA256_RSA_PKCS" in listed) is TRAITS[tokens.name].rsa_hash_on_token
    assert ("ECDSA" in listed) is TRAITS[tokens.name].ecdsa
    assert (data["pin_min"], data["pin_max"]) == TRAITS[tokens.name].pin_range


@pytest.mark.only("opencryptoki", "SoftHSM's tools cannot leave a token without a user PIN")
@pytest.mark.opencryptoki
def test_token_info_says_the_user_pin_is_not_initialised(
    opencryptoki: OpenCryptoki, signkit: Runner
) -> None:
    """Regression (issue 19): a token fresh from C_InitToken showed no sign of it."""
    runner = Runner(opencryptoki, signkit.state)
    proc = runner(
        "token", "info", "--module", opencryptoki.module, "--token-label", "signkit-fresh"
    )
    assert proc.returncode == 0, proc.stderr
    assert "user PIN not initialised" in proc.stdout  # token info is data: stdout
    login_proc = runner(
        "token",
        "login",
        "--module",
        opencryptoki.module,
        "--token-label",
        "signkit-fresh",
        env={"SIGNKIT_PIN": opencryptoki.user_pin},
    )
    assert login_proc.returncode == 4
    # the real return value, named, with what to do
    assert "CKR_USER_PIN_NOT_INITIALIZED (0x102)" in login_proc.stderr
    assert "hint: set the user PIN with the SO PIN" in login_proc.stderr


# ---------------------------------------------------------------- selection


@pytest.mark.parametrize(
    ("selector", "expected_cert"),
    [
        ({"token_label": "signkit-test-a", "key_label": "signer-rsa2048"}, "signer-rsa2048"),
        # key label differs from its (non-ASCII) certificate label: paired by CKA_ID
        ({"token_label": "signkit-test-a", "key_label": "key-vn"}, "signer-vn"),
        (
            {
                "token_label": "signkit-test-a",
                "key_label": "Nguyễn Văn An's Test-CA SHA2 Certificate",
            },
            "signer-vn",
        ),
        ({"token_label": "signkit-test-a", "key_id": b"\x03"}, "signer-ec256"),
        # no token criteria: the certificate fingerprint narrows the token
        ({"cert_fingerprint": "FINGERPRINT:signer-rsa3072"}, "signer-rsa3072"),
        # the demo token holds exactly one pair: no key option needed
        ({"token_label": "signkit-demo"}, "signer-vn"),
        # a key without label, certificate with another CKA_ID: paired by public key
        ({"token_label": "signkit-test-c", "key_id": b"\x25"}, "signer-nolabel"),
    ],
)
def test_selection_criteria(
    tokens: TokenImpl, tmp_path: Path, selector: dict[str, object], expected_cert: str
) -> None:
    fp = selector.get("cert_fingerprint")
    if isinstance(fp, str) and fp.startswith("FINGERPRINT:"):
        der = pki_certificate(fp.split(":", 1)[1])
        # with colons and upper case, as people paste them
        hexed = hashlib.sha256(der).hexdigest().upper()
        selector["cert_fingerprint"] = ":".join(hexed[i : i + 2] for i in range(0, 64, 2))
    with open_key(tokens, tmp_path, **selector) as opened:
        assert opened.pair.cert is not None
        assert opened.pair.cert.der == pki_certificate(expected_cert)
        signer = opened.signer
        scheme = "ecdsa" if signer.key_type == "EC" else "pkcs1v15"
        if scheme == "ecdsa" and not TRAITS[tokens.name].ecdsa:
            with pytest.raises(MechanismError, match="offers no mechanism for ecdsa"):
                signer.sign(b"hello", digest_algorithm="sha256", scheme=scheme)
        else:
            sig = signer.sign(b"hello", digest_algorithm="sha256", scheme=scheme)
            verify(signer.certificate_der, b"hello", sig, scheme, hashes.SHA256())
    if expected_cert == "signer-nolabel":
        assert opened.pair.paired_by == "public-key"


@pytest.mark.parametrize(
    ("uri", "expected_cert"),
    [
        ("pkcs11:token=signkit-test-a;object=signer-rsa2048", "signer-rsa2048"),
        ("pkcs11:token=signkit-test-a;id=%02;type=private", "signer-vn"),
        # percent-encoded UTF-8 label of the certificate
        (
            "pkcs11:token=signkit-test-a;object=Nguy%E1%BB%85n%20V%C4%83n%20An's%20Test-CA%20SHA2%20Certificate",
            "signer-vn",
        ),
        ("pkcs11:token=signkit-demo", "signer-vn"),
    ],
)
def test_selection_by_uri(tokens: TokenImpl, tmp_path: Path, uri: str, expected_cert: str) -> None:
    with open_signing_key(
        TokenSpec(
            module=tokens.module,
            selector=parse_pkcs11_uri(uri).selector,
            pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(tokens.user_pin)),
        ),
        io=NoTerminal(),
        guard=PinGuard(tmp_path),
        warn=lambda s: None,
    ) as opened:
        assert opened.pair.cert is not None
        assert opened.pair.cert.der == pki_certificate(expected_cert)


def test_uri_token_and_library_attributes_must_match(tokens: TokenImpl, signkit_on: Runner) -> None:
    """Regression (issue 19): manufacturer, model and library-* were accepted and
    ignored, so pkcs11:manufacturer=SafeNet matched any token."""
    traits = TRAITS[tokens.name]
    with Pkcs11Module.load(tokens.module) as module:
        library = module.library_info()
    base = ["token", "info", "--module", tokens.module, "--json", "--key"]
    good = (
        f"pkcs11:token=signkit-demo;manufacturer={traits.manufacturer.replace(' ', '%20')};"
        f"model={traits.model.replace(' ', '%20')};"
        f"library-manufacturer={library['manufacturer'].replace(' ', '%20')};"
        f"library-version={library['library_version']}"
    )
    proc = signkit_on(*base, good)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label"] == "signkit-demo"
    for attr, why in (
        ("manufacturer=SafeNet", "no token matches"),
        ("model=eToken", "no token matches"),
        ("library-manufacturer=SafeNet", "library-manufacturer is"),
        ("library-description=eToken%20PKCS11", "library-description is"),
        ("library-version=99.1", "library-version is"),
    ):
        bad = signkit_on(*base, f"pkcs11:token=signkit-demo;{attr}")
        assert bad.returncode == 4, (attr, bad.stderr)
        assert why in bad.stderr, (attr, bad.stderr)


def test_serial_and_slot_select_the_same_token(tokens: TokenImpl, tmp_path: Path) -> None:
    """On openCryptoki every token's serial is 123: the key narrows the serial's tokens."""
    with Pkcs11Module.load(tokens.module) as module:
        b = next(t for t in module.list_tokens() if t.label == "signkit-test-b")
    for selector in ({"token_serial": b.serial}, {"slot": b.slot_id}):
        with open_key(tokens, tmp_path, key_label="leader-vn", **selector) as opened:
            assert opened.token_name == b.display_name()


def test_ambiguous_key_lists_candidates(tokens: TokenImpl, tmp_path: Path) -> None:
    with pytest.raises(KeyAmbiguousError) as err:
        with open_key(tokens, tmp_path, token_label="signkit-test-a"):
            pass
    text = str(err.value)
    assert "3 keys match" in text and "signer-rsa2048" in text and "key-vn" in text
    assert err.value.hint and "--key-label" in err.value.hint


def test_ambiguous_token_lists_tokens(tokens: TokenImpl, tmp_path: Path) -> None:
    with pytest.raises(TokenAmbiguousError) as err:
        with open_key(tokens, tmp_path):
            pass
    assert "signkit-test-a" in str(err.value) and "signkit-demo" in str(err.value)


def test_no_matching_key_or_token(tokens: TokenImpl, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError) as err:
        with open_key(tokens, tmp_path, token_label="signkit-test-a", key_label="nope"):
            pass
    assert "keys on the token" in str(err.value) and "signer-ec256" in str(err.value)
    with pytest.raises(TokenNotFoundError) as terr:
        with open_key(tokens, tmp_path, token_label="no-such-token"):
            pass
    assert "signkit-demo" in str(terr.value)  # lists what is present


def test_resolve_module_by_discovery_picks_the_module_with_the_token(tokens: TokenImpl) -> None:
    from signkit.tokens.discovery import ModuleCandidate

    candidates = [
        ModuleCandidate(
            path="/nonexistent/vendor.so",
            source="well-known",
            name="x",
            problem="file does not exist",
        ),
        ModuleCandidate(path=tokens.module, source="p11-kit", name=tokens.name),
    ]
    chosen = resolve_module(
        TokenSpec(selector=KeySelector(token_label="signkit-test-b")), discover=lambda: candidates
    )
    assert chosen == tokens.module


def test_discovery_counts_only_tokens_a_user_could_sign_with(
    softhsm: SoftHsm, opencryptoki: OpenCryptoki, signkit: Runner, tmp_path: Path
) -> None:
    """Regression (issue 19): with several modules registered, a blank slot or a token
    without the key made `token info`, `sign` and `cert check` exit 4 "found in several
    modules". Both modules are registered with p11-kit here, as a user would."""
    home = tmp_path / "home"
    modules = home / ".config" / "pkcs11" / "modules"
    modules.mkdir(parents=True)
    (modules / "opencryptoki.module").write_text(f"module: {opencryptoki.module}\n")
    (modules / "softhsm2.module").write_text(f"module: {softhsm.module}\n")
    # SoftHSM holds only the demo token (and a blank slot); openCryptoki all of its own
    only_demo = tmp_path / "hsm"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "softhsm" / "init_tokens.py"),
            "--dir",
            str(only_demo),
            "--tokens",
            "signkit-demo",
        ],
        check=True,
        capture_output=True,
    )
    env = {"HOME": str(home), "SOFTHSM2_CONF": str(only_demo / "softhsm2.conf")}
    # a key only openCryptoki holds, named without a module or token
    proc = signkit("token", "info", "--key", "pkcs11:object=signer-rsa3072", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["label"] == "signkit-test-b"
    assert os.path.realpath(found["module"]) == os.path.realpath(opencryptoki.module)
    # a label both modules hold is ambiguous, and says so
    both = signkit("token", "info", "--token-label", "signkit-demo", env=env)
    assert both.returncode == 4 and "several modules" in both.stderr
    # the listing marks what discovery skips: openCryptoki's blank Debian slot
    listing = signkit("token", "list", env=env)
    assert listing.returncode == 0, listing.stderr
    blank = next(line for line in listing.stdout.splitlines() if "IBM OS PKCS#11" in line)
    assert "not initialised" in blank and "cannot sign" in blank


# ------------------------------------------------------------------ signing


@pytest.mark.parametrize("algo", ["sha256", "sha384", "sha512"])
def test_rsa_pkcs1_and_pss(tokens: TokenImpl, tmp_path: Path, algo: str) -> None:
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[algo]
    data = b"signkit \xe2\x9c\x93" * 100
    with open_key(tokens, tmp_path, token_label="signkit-test-a", key_label="signer-rsa2048") as k:
        # openCryptoki's soft token has no CKM_SHA*_RSA_PKCS: the host hashes
        host_hash = k.signer.plan(algo, "pkcs1v15")[1]
        assert host_hash is not TRAITS[tokens.name].rsa_hash_on_token
        for scheme in ("pkcs1v15", "pss"):
            sig = k.signer.sign(data, digest_algorithm=algo, scheme=scheme)
            verify(k.signer.certificate_der, data, sig, scheme, h)


def test_ecdsa_where_the_token_offers_it(tokens: TokenImpl, tmp_path: Path) -> None:
    data = b"signkit ECDSA"
    with open_key(tokens, tmp_path, token_label="signkit-test-a", key_label="signer-ec256") as k:
        if not TRAITS[tokens.name].ecdsa:
            with pytest.raises(MechanismError) as err:
                k.signer.plan("sha256", "ecdsa")
            assert "`signkit token info`" in str(err.value.hint)
            return
        # SoftHSM has no CKM_ECDSA_SHA*: the host hashes and the token signs raw
        assert k.signer.plan("sha256", "ecdsa")[1] is True
        sig = k.signer.sign(data, digest_algorithm="sha256", scheme="ecdsa")
        verify(k.signer.certificate_der, data, sig, "ecdsa", hashes.SHA256())


def test_sha1_refused_unless_allowed(tokens: TokenImpl, tmp_path: Path) -> None:
    with open_key(tokens, tmp_path, token_label="signkit-test-a", key_label="signer-rsa2048") as k:
        with pytest.raises(MechanismError, match="SHA-1"):
            k.signer.sign(b"x", digest_algorithm="sha1", scheme="pkcs1v15")
        with pytest.raises(MechanismError, match="cannot make ecdsa"):
            k.signer.sign(b"x", digest_algorithm="sha256", scheme="ecdsa")


def test_chain_certificates_come_with_the_signer(tokens: TokenImpl, tmp_path: Path) -> None:
    with open_key(tokens, tmp_path, token_label="signkit-demo") as k:
        chain = set(k.signer.chain_der)
    assert chain == {pki_certificate("interm-ca"), pki_certificate("root-ca")}


def test_always_authenticate_key_signs_repeatedly(tokens: TokenImpl, tmp_path: Path) -> None:
    """Regression (issue 19): openCryptoki keeps CKA_ALWAYS_AUTHENTICATE but refuses the
    per-signature login with CKR_USER_TYPE_INVALID, and every signature failed. The
    refusal costs no PIN try; signkit signs on the logged-in session and says so once."""
    warnings: list[str] = []
    with open_key(
        tokens, tmp_path, warnings.append, token_label="signkit-test-b", key_label="signer-rsa3072"
    ) as k:
        assert k.pair.key.always_authenticate
        for i in range(3):
            data = f"document {i}".encode()
            sig = k.signer.sign(data, digest_algorithm="sha256", scheme="pkcs1v15")
            verify(k.signer.certificate_der, data, sig, "pkcs1v15", hashes.SHA256())
    flags = flags_of(tokens, "signkit-test-b")
    assert not (flags.user_pin_count_low or flags.user_pin_final_try or flags.user_pin_locked)
    if TRAITS[tokens.name].context_login:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert "CKR_USER_TYPE_INVALID (0x103)" in warnings[0]
        assert "no PIN try used" in warnings[0]


def test_raw_context_login_signs_with_an_always_authenticate_key(tokens: TokenImpl) -> None:
    """The ctypes path (C_SignInit, context-specific C_Login, C_Sign) on the real token."""
    from pkcs11 import Mechanism

    with Pkcs11Module.load(tokens.module) as module:
        with module.open_token(KeySelector(token_label="signkit-test-b")) as session:
            session.login(Pin(tokens.user_pin))
            pair = next(p for p in session.pairs() if p.key.label == "signer-rsa3072")
            key = session._find_private_key(pair.key)
            data = hashlib.sha256(b"raw context login").digest()
            digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + data
            sig, refused = session.raw_context_sign(
                key, int(Mechanism.RSA_PKCS), digest_info, tokens.user_pin.encode()
            )
            assert pair.cert is not None
            verify(pair.cert.der, b"raw context login", sig, "pkcs1v15", hashes.SHA256())
    assert refused is not TRAITS[tokens.name].context_login


@pytest.mark.only("softhsm", "the PIN pad is simulated at a token that takes the context login")
def test_pin_pad_always_authenticate_asks_the_pad_per_signature(softhsm: SoftHsm) -> None:
    """SoftHSM has no PIN pad: the pad is simulated at the raw call, which is
    handed the PIN where a reader would collect it; signkit itself passes NULL."""
    seen: list[bytes | None] = []
    with Pkcs11Module.load(softhsm.module) as module:
        with module.open_token(KeySelector(token_label="signkit-test-b")) as session:
            session.login(Pin(softhsm.user_pin))
            pair = next(p for p in session.pairs() if p.key.label == "signer-rsa3072")
            signer = session.signer(pair, context_pin=None, pinpad=True)
            assert signer.pinpad_per_signature
            real = session.raw_context_sign

            def pad(key, mechanism, data, pin):  # type: ignore[no-untyped-def]
                seen.append(pin)
                return real(key, mechanism, data, softhsm.user_pin.encode())

            session.raw_context_sign = pad  # type: ignore[method-assign]
            for i in range(3):
                data = f"document {i}".encode()
                sig = signer.sign(data, digest_algorithm="sha256", scheme="pkcs1v15")
                verify(signer.certificate_der, data, sig, "pkcs1v15", hashes.SHA256())
            with pytest.raises(MechanismError, match="PSS with a PIN-pad"):
                signer.sign(b"x", digest_algorithm="sha256", scheme="pss")
            with pytest.raises(Exception, match="no PIN is kept"):
                session.signer(pair, context_pin=None, pinpad=False)
    assert seen == [None, None, None]  # one pad entry per signature, no PIN from the host


RAWONLY_SCRIPT = r"""
import json, sys
from signkit.tokens.access import TokenSpec, open_signing_key
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import KeySelector
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec
from pathlib import Path

class IO:
    def interactive(self): return False
module, pin, label, scheme, algo, state = sys.argv[1:]
spec = TokenSpec(module=module, selector=KeySelector(token_label="signkit-test-a", key_label=label),
                 pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(pin)))
with open_signing_key(spec, io=IO(), guard=PinGuard(Path(state)), warn=print) as k:
    mech, host = k.signer.plan(algo, scheme)
    sig = k.signer.sign(b"raw-only token", digest_algorithm=algo, scheme=scheme)
    print(json.dumps({"mechanism": mech.name, "host_hash": host, "sig": sig.hex(),
                      "cert": k.signer.certificate_der.hex(),
                      "offered": sorted(m.name for m in k.signer.session.mechanisms())}))
"""


def _rawonly(softhsm: SoftHsm, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            RAWONLY_SCRIPT,
            softhsm.module,
            softhsm.user_pin,
            *args,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**softhsm.env(rawonly=True), "PATH": "/usr/bin:/bin", "XDG_STATE_HOME": str(tmp_path)},
        cwd=REPO,
        check=False,
    )


@pytest.mark.only("softhsm", "only SoftHSM can restrict a token's mechanisms (slots.mechanisms)")
@pytest.mark.parametrize(
    ("label", "scheme", "mechanism"),
    [("signer-rsa2048", "pkcs1v15", "RSA_PKCS"), ("signer-ec256", "ecdsa", "ECDSA")],
)
def test_token_offering_only_raw_mechanisms(
    softhsm: SoftHsm, tmp_path: Path, label: str, scheme: str, mechanism: str
) -> None:
    """SoftHSM's slots.mechanisms allow-list models a token without hash-on-token."""
    proc = _rawonly(softhsm, tmp_path, label, scheme, "sha256")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out["offered"]) == {"RSA_PKCS", "ECDSA"}
    assert out["mechanism"] == mechanism and out["host_hash"] is True
    verify(
        bytes.fromhex(out["cert"]),
        b"raw-only token",
        bytes.fromhex(out["sig"]),
        scheme,
        hashes.SHA256(),
    )


@pytest.mark.only("softhsm", "only SoftHSM can restrict a token's mechanisms (slots.mechanisms)")
def test_rawonly_token_refuses_pss_clearly(softhsm: SoftHsm, tmp_path: Path) -> None:
    proc = _rawonly(softhsm, tmp_path, "signer-rsa2048", "pss", "sha256")
    assert proc.returncode != 0
    assert "MechanismError" in proc.stderr and "no mechanism for pss" in proc.stderr


def test_sign_pdf_and_xml_end_to_end(
    tokens: TokenImpl, signkit_on: Runner, pki: object, tmp_path: Path
) -> None:
    """A whole `sign pdf` and `sign xml` run on each implementation; pdfsig, qpdf,
    pyHanko and xmlsec1 judge the outputs."""
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    env = {"SIGNKIT_PIN": tokens.user_pin, "XDG_CONFIG_HOME": str(tmp_path / "no-config")}
    key = ["--module", tokens.module, "--token-label", "signkit-demo", "--trust", str(trust)]
    pdf = tmp_path / "decision.pdf"
    proc = signkit_on(
        "sign", "pdf", str(FIXTURES / "samples" / "decision.pdf"), "-o", str(pdf), *key,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_signed_ok(pdf)
    xml = tmp_path / "einvoice.xml"
    proc = signkit_on(
        "sign", "xml", str(FIXTURES / "xml" / "einvoice.xml"), "-o", str(xml), *key,
        "--preset", "vn-einvoice", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_xmlsec_ok(xml, tmp_path, id_attrs=("--id-attr:Id DLHDon",))


# -------------------------------------------------------------------- PINs


def test_pin_outside_the_length_range_is_refused_before_c_login(
    tokens: TokenImpl, signkit_on: Runner, scratch: str, tmp_path: Path
) -> None:
    """Regression (issue 19): a 3- or 10-digit PIN on a 4-8 token went to C_Login and
    counted as a wrong try (openCryptoki: two such PINs reached "one try left")."""
    low, high = TRAITS[tokens.name].pin_range
    # Letters in the PINs: digits alone could turn up in a slot id or a serial.
    for n, pin in enumerate(("q7z", ("x4" * high)[: high + 1])):
        log = tmp_path / f"spy{n}.log"
        proc = signkit_on(
            "token", "login", "--module", spy_module(), "--token-label", scratch,
            env={"SIGNKIT_PIN": pin, **spy_env(tokens, log)},
        )  # fmt: skip
        assert proc.returncode == 4
        assert "not sent to the token (no try used)" in proc.stderr
        assert str(low if n == 0 else high) in proc.stderr and pin not in proc.stderr
        assert logins(log) == 0
    flags = flags_of(tokens, scratch)
    assert not (flags.user_pin_count_low or flags.user_pin_final_try or flags.user_pin_locked)


@pytest.mark.only("opencryptoki", "SoftHSM never reports final try or locked")
@pytest.mark.opencryptoki
def test_pin_tries_count_down_to_locked(
    opencryptoki: OpenCryptoki, signkit: Runner, tmp_path: Path
) -> None:
    """openCryptoki reports CKF_USER_PIN_COUNT_LOW, FINAL_TRY and LOCKED after one, two
    and three wrong PINs: every PIN-safety path runs here on the real flags."""
    ock = opencryptoki
    label = "signkit-scratch"
    ock.reset_pin(label)
    runner = Runner(ock, signkit.state)
    base = ["token", "login", "--module", spy_module(), "--token-label", label]
    clear = ["token", "clear-guard", "--module", ock.module, "--token-label", label]
    try:
        first = runner(*base, env={"SIGNKIT_PIN": WRONG_PIN, **spy_env(ock, tmp_path / "1")})
        assert first.returncode == 4
        assert "the token reports few tries left" in first.stderr
        assert "unattended logins on this token are now blocked for user" in first.stderr
        assert logins(tmp_path / "1") == 1
        assert flags_of(ock, label).user_pin_count_low

        assert runner(*clear).returncode == 0
        second = runner(*base, env={"SIGNKIT_PIN": WRONG_PIN, **spy_env(ock, tmp_path / "2")})
        assert second.returncode == 4 and "ONE try left" in second.stderr
        assert flags_of(ock, label).user_pin_final_try

        # the right PIN from a scheduled job: refused at the final try, token untouched
        assert runner(*clear).returncode == 0
        cron = runner(*base, env={"SIGNKIT_PIN": ock.user_pin, **spy_env(ock, tmp_path / "3")})
        assert cron.returncode == 4
        assert "one PIN try left; refusing an unattended login" in cron.stderr
        assert logins(tmp_path / "3") == 0
        assert flags_of(ock, label).user_pin_final_try

        # a person is asked first; saying no leaves the token as it was
        def person_login(person: Person) -> None:
            with Pkcs11Module.load(ock.module) as module:
                with module.open_token(KeySelector(token_label=label)) as session:
                    login(
                        token=session.info,
                        spec=PinSpec(kind=PinSourceKind.PROMPT),
                        io=person,
                        guard=PinGuard(tmp_path / "guard"),
                        do_login=session.login,
                        refresh_flags=session.refresh_flags,
                        warn=lambda s: None,
                        keep_pin=False,
                    )

        careful = Person(typed=ock.user_pin, answer=False)
        with pytest.raises(PinFinalTryError, match="cancelled at the final-try warning"):
            person_login(careful)
        assert "ONE PIN try left" in careful.questions[0]
        flags = flags_of(ock, label)
        assert flags.user_pin_final_try and not flags.user_pin_locked

        with pytest.raises(PinIncorrectError, match="now reports the PIN LOCKED"):
            person_login(Person(typed=WRONG_PIN, answer=True))

        locked = runner(*base, env={"SIGNKIT_PIN": ock.user_pin, **spy_env(ock, tmp_path / "4")})
        assert locked.returncode == 4 and "PIN locked; no login attempted" in locked.stderr
        assert logins(tmp_path / "4") == 0
    finally:
        ock.reset_pin(label)


@pytest.mark.only("opencryptoki", "SoftHSM never reports few tries left before a login")
@pytest.mark.opencryptoki
def test_few_tries_left_warns_and_the_right_pin_still_signs(
    opencryptoki: OpenCryptoki, signkit: Runner, tmp_path: Path
) -> None:
    ock = opencryptoki
    label = "signkit-scratch"
    ock.reset_pin(label)
    try:
        with Pkcs11Module.load(ock.module) as module:
            with module.open_token(KeySelector(token_label=label)) as session:
                with pytest.raises(Exception, match="PIN rejected"):
                    session.login(Pin(WRONG_PIN))
        assert flags_of(ock, label).user_pin_count_low
        proc = Runner(ock, signkit.state)(
            "token", "login", "--module", ock.module, "--token-label", label,
            env={"SIGNKIT_PIN": ock.user_pin},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "warning: token 'signkit-scratch'" in proc.stderr
        assert "few PIN tries left" in proc.stderr
        assert not flags_of(ock, label).user_pin_count_low  # a good login clears it
    finally:
        ock.reset_pin(label)


@pytest.mark.only("opencryptoki", "only openCryptoki gives every token the same serial")
@pytest.mark.opencryptoki
def test_guard_tells_tokens_with_the_same_serial_apart(
    opencryptoki: OpenCryptoki, signkit: Runner
) -> None:
    ock = opencryptoki
    runner = Runner(ock, signkit.state)
    try:
        wrong = runner(
            "token", "login", "--module", ock.module, "--token-label", "signkit-scratch",
            env={"SIGNKIT_PIN": WRONG_PIN},
        )  # fmt: skip
        assert wrong.returncode == 4 and "are now blocked for user" in wrong.stderr
        again = runner(
            "token", "login", "--module", ock.module, "--token-label", "signkit-scratch",
            env={"SIGNKIT_PIN": ock.user_pin},
        )  # fmt: skip
        assert again.returncode == 4 and "blocked since" in again.stderr
        # serial 123 too, another token: not blocked
        other = runner(
            "token", "login", "--module", ock.module, "--token-label", "signkit-demo",
            env={"SIGNKIT_PIN": ock.user_pin},
        )  # fmt: skip
        assert other.returncode == 0, other.stderr
    finally:
        ock.reset_pin("signkit-scratch")


# ------------------------------------------------------------------- errors


def test_a_module_with_no_token_present_means_retry_later(signkit: Runner) -> None:
    """OpenSC with no reader attached: nothing is plugged in, which passes by itself
    (exit 75, as the README's table says), unlike a token that is there but not the
    one asked for (exit 4)."""
    opensc = next(
        (p for p in ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/opensc-pkcs11.so")
         if os.path.exists(p)),
        None,
    )  # fmt: skip
    assert opensc, "opensc-pkcs11.so not found: install the Debian package opensc"
    proc = signkit("token", "info", "--module", opensc, "--token-label", "VNPT-CA")
    assert proc.returncode == 75, proc.stderr
    assert "no token present (looking for --token-label 'VNPT-CA')" in proc.stderr
    listing = signkit("token", "list", "--module", opensc)
    assert listing.returncode == 75 and "no token present in any module" in listing.stderr


def _ns(*command: str, mounts: str, userns: list[str]) -> list[str]:
    """``command`` in a private mount namespace after ``mounts`` (a shell snippet)."""
    unshare = shutil.which("unshare")
    assert unshare, "unshare (util-linux) is needed to hide pkcsslotd from one process"
    script = f'{mounts}\nexec "$@"'
    return [unshare, *userns, "sh", "-c", script, "sh", *command]


@pytest.mark.only("opencryptoki", "only openCryptoki starts through a slot daemon")
@pytest.mark.opencryptoki
def test_daemon_not_running_is_named(
    opencryptoki: OpenCryptoki, signkit: Runner, tmp_path: Path
) -> None:
    """Regression (issue 19): a failed C_Initialize read "cannot load PKCS#11 module
    (HostMemory)" with an architecture hint. In a mount namespace where /run is empty,
    pkcsslotd is as absent to this one process as if it were stopped."""
    cmd = _ns(
        sys.executable, "-m", "signkit", "token", "info", "--module", opencryptoki.module,
        "--token-label", "signkit-demo", "--debug",
        mounts="mount -t tmpfs none /run",
        userns=["--user", "--map-root-user", "--mount"],
    )  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=signkit.env(), cwd=REPO, check=False
    )
    assert proc.returncode == 4, proc.stderr
    assert "the module failed to start: CKR_FUNCTION_FAILED (0x6)" in proc.stderr
    assert "hint: openCryptoki's slot daemon pkcsslotd is not running" in proc.stderr
    # --debug shows the error with its cause, python-pkcs11's exception
    assert "pkcs11.exceptions.FunctionFailed" in proc.stderr
    assert "direct cause" in proc.stderr and "NoneType: None" not in proc.stderr


@pytest.mark.only("opencryptoki", "only openCryptoki requires a group of its users")
@pytest.mark.opencryptoki
def test_user_outside_the_pkcs11_group_is_named(
    opencryptoki: OpenCryptoki, signkit: Runner, tmp_path: Path
) -> None:
    """As 'nobody' (a user namespace), openCryptoki refuses to start with CKR_HOST_MEMORY."""
    state = tmp_path / "nobody-state"
    state.mkdir()
    cmd = _ns(
        sys.executable, "-m", "signkit", "token", "info", "--module", opencryptoki.module,
        "--token-label", "signkit-demo",
        mounts=":",
        userns=["--user", "--map-user=65534", "--map-group=65534"],
    )  # fmt: skip
    env = {**signkit.env(), "XDG_STATE_HOME": str(state)}
    env.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    assert proc.returncode == 4, proc.stderr
    assert "CKR_HOST_MEMORY (0x2)" in proc.stderr
    assert "hint: user nobody is not in the 'pkcs11' group" in proc.stderr
    assert "usermod -aG pkcs11 nobody" in proc.stderr


TWO_RUNS_SCRIPT = r"""
import os, sys
from pathlib import Path
from signkit.tokens.access import TokenSpec, open_signing_key
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import KeySelector
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec

class IO:
    def interactive(self): return False

module, pin, state = sys.argv[1:]
spec = TokenSpec(module=module, selector=KeySelector(token_label="signkit-demo"),
                 pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(pin)))
files = []
for run in range(3):  # as a program using signkit as a library would
    with open_signing_key(spec, io=IO(), guard=PinGuard(Path(state)), warn=print) as k:
        k.signer.sign(b"run %d" % run, digest_algorithm="sha256", scheme="pkcs1v15")
        files.append(open(os.path.join(state, f"log{run}"), "w"))
for fh in files:
    fh.write("still mine")  # EBADF if the module closed it
    fh.close()
print("ok")
"""


@pytest.mark.only("opencryptoki", "openCryptoki 3.8 closes a stale descriptor at C_Finalize")
@pytest.mark.opencryptoki
def test_several_runs_in_one_process_keep_their_files(
    opencryptoki: OpenCryptoki, tmp_path: Path
) -> None:
    """openCryptoki opens its API lock file at the first C_Initialize of a process and
    closes that descriptor number at every C_Finalize; signkit finalises it once, at
    exit, so a second run in one process does not lose an open file (an audit log)."""
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("SIGNKIT_PIN", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            TWO_RUNS_SCRIPT,
            opencryptoki.module,
            opencryptoki.user_pin,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


# -------------------------------------------------------------- concurrency


CONCURRENT_SCRIPT = r"""
import sys
from pathlib import Path
from signkit.errors import SignkitError
from signkit.tokens.access import TokenSpec, open_signing_key
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import KeySelector
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec

class IO:
    def interactive(self): return False

module, pin, state = sys.argv[1:]
spec = TokenSpec(module=module, selector=KeySelector(token_label="signkit-demo"),
                 pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(pin)))
print("ready", flush=True)
sys.stdin.readline()  # the start gate: every run starts at once
try:
    with open_signing_key(spec, io=IO(), guard=PinGuard(Path(state)), warn=print) as k:
        k.signer.sign(b"concurrent", digest_algorithm="sha256", scheme="pkcs1v15")
except SignkitError as exc:
    print(f"FAILED {type(exc).__name__}: {exc}", flush=True)
    sys.exit(4)
"""


@pytest.mark.only("softhsm", "SoftHSM's token files are what raced (issue 13)")
def test_four_runs_at_once_on_one_token(softhsm: SoftHsm, tmp_path: Path) -> None:
    """Regression (issue 13): two runs on one token sometimes failed with "GeneralError
    while logging in" (or missed the token while listing slots). 4 concurrent runs
    x 10 rounds, each opening, logging in and signing, all started at one gate."""
    env = {**os.environ, **softhsm.env(), "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("SIGNKIT_PIN", None)
    failures = []
    for round_ in range(10):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CONCURRENT_SCRIPT,
                    softhsm.module,
                    softhsm.user_pin,
                    str(tmp_path / f"state{i}"),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                cwd=REPO,
            )
            for i in range(4)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, err = p.communicate(timeout=120)
            if p.returncode != 0:
                failures.append((round_, p.returncode, out.strip(), err.strip()[-300:]))
    assert failures == []


PULLED_OUT_SCRIPT = r"""
import sys
import pkcs11.exceptions as p11e
from signkit.tokens import pkcs11 as p11

real = p11.TokenSigner.sign
calls = 0

def pulled_out(self, data, **kw):
    global calls
    calls += 1
    if calls > 1:
        try:
            raise p11e.DeviceRemoved()
        except p11e.PKCS11Error as exc:
            raise p11.wrap_pkcs11_error(exc, subject=self.session.name, action="signing") from exc
    return real(self, data, **kw)

p11.TokenSigner.sign = pulled_out
sys.argv = ["signkit", *sys.argv[1:]]
from signkit.cli import main
main()
"""


def test_debug_shows_a_mid_batch_token_error_with_its_cause(
    tokens: TokenImpl, signkit_on: Runner, pki: object, tmp_path: Path
) -> None:
    """Regression (issue 19): a token error after the first documents printed
    "NoneType: None" under --debug instead of the error. The token is pulled out
    after one signature (a fault at the token seam: neither implementation can be
    unplugged); the error keeps python-pkcs11's exception as its cause."""
    trust = tmp_path / "root.der"
    trust.write_bytes(pki_certificate("root-ca"))
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        shutil.copy(FIXTURES / "samples" / "attachment.pdf", src / f"d{i}.pdf")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            PULLED_OUT_SCRIPT,
            "sign",
            "pdf",
            str(src),
            "--output-dir",
            str(tmp_path / "out"),
            "--jobs",
            "1",
            "--module",
            tokens.module,
            "--token-label",
            "signkit-demo",
            "--trust",
            str(trust),
            "--debug",
        ],
        capture_output=True,
        text=True,
        env=signkit_on.env(
            {"SIGNKIT_PIN": tokens.user_pin, "XDG_CONFIG_HOME": str(tmp_path / "no-config")}
        ),
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 75, proc.stderr  # the token may come back: retry later
    assert "token removed while signing" in proc.stderr
    assert "pkcs11.exceptions.DeviceRemoved" in proc.stderr and "direct cause" in proc.stderr
    assert "NoneType: None" not in proc.stderr
