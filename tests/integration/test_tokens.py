"""Token layer on real SoftHSM tokens built from softhsm/layout.toml."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from signkit.errors import (
    KeyAmbiguousError,
    KeyNotFoundError,
    MechanismError,
    TokenAmbiguousError,
    TokenNotFoundError,
)
from signkit.tokens.access import TokenSpec, open_signing_key, resolve_module
from signkit.tokens.guard import PinGuard
from signkit.tokens.model import KeySelector
from signkit.tokens.pin import Pin, PinSourceKind, PinSpec
from signkit.tokens.pkcs11 import Pkcs11Module
from signkit.tokens.uri import parse_pkcs11_uri
from support.infra import REPO, SoftHsm, pki_certificate

pytestmark = pytest.mark.softhsm

TOKENS = {"signkit-demo", "signkit-test-a", "signkit-test-b", "signkit-test-c"}


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


def spec(hsm: SoftHsm, **selector: object) -> TokenSpec:
    return TokenSpec(
        module=hsm.module,
        selector=KeySelector(**selector),  # type: ignore[arg-type]
        pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(hsm.user_pin)),
    )


def open_key(hsm: SoftHsm, tmp_path: Path, **selector: object):  # type: ignore[no-untyped-def]
    return open_signing_key(
        spec(hsm, **selector), io=NoTerminal(), guard=PinGuard(tmp_path), warn=lambda s: None
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


def test_lists_every_token_with_flags(softhsm: SoftHsm) -> None:
    with Pkcs11Module.load(softhsm.module) as module:
        tokens = {t.label: t for t in module.list_tokens()}
        info = module.library_info()
    assert TOKENS <= set(tokens)
    demo = tokens["signkit-demo"]
    assert demo.manufacturer == "SoftHSM project"
    assert demo.flags.login_required and demo.flags.initialized
    assert not demo.flags.user_pin_locked
    assert demo.serial and demo.model == "SoftHSM v2"
    assert "SoftHSM" in info["manufacturer"]


def test_objects_without_login_show_certificates_not_private_keys(softhsm: SoftHsm) -> None:
    with Pkcs11Module.load(softhsm.module) as module:
        with module.open_token(KeySelector(token_label="signkit-test-a")) as session:
            certs = session.certificates()
            privates = session.private_keys()
            publics = session.public_keys()
    labels = {c.label for c in certs}
    assert "Nguyễn Văn An's Test-CA SHA2 Certificate" in labels
    assert privates == []  # CKA_PRIVATE keys are invisible before login
    assert {k.label for k in publics} == {"signer-rsa2048", "key-vn", "signer-ec256"}
    vn = next(c for c in certs if c.id == b"\x02")
    expected = hashlib.sha256(pki_certificate("signer-vn")).hexdigest()
    assert vn.sha256 == expected
    assert "CN=Nguyễn Văn An" in vn.subject and "UID=MST:0100000000-999" in vn.subject
    assert vn.key_usage == ("digitalSignature", "nonRepudiation")
    ec_pub = next(k for k in publics if k.label == "signer-ec256")
    assert (ec_pub.key_type, ec_pub.key_size) == ("EC", 256)


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
    softhsm: SoftHsm, tmp_path: Path, selector: dict[str, object], expected_cert: str
) -> None:
    fp = selector.get("cert_fingerprint")
    if isinstance(fp, str) and fp.startswith("FINGERPRINT:"):
        der = pki_certificate(fp.split(":", 1)[1])
        # with colons and upper case, as people paste them
        hexed = hashlib.sha256(der).hexdigest().upper()
        selector["cert_fingerprint"] = ":".join(hexed[i : i + 2] for i in range(0, 64, 2))
    with open_key(softhsm, tmp_path, **selector) as opened:
        assert opened.pair.cert is not None
        assert opened.pair.cert.der == pki_certificate(expected_cert)
        signer = opened.signer
        sig = signer.sign(b"hello", digest_algorithm="sha256", scheme=signer.default_scheme())
        verify(signer.certificate_der, b"hello", sig, signer.default_scheme(), hashes.SHA256())
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
def test_selection_by_uri(softhsm: SoftHsm, tmp_path: Path, uri: str, expected_cert: str) -> None:
    parsed = parse_pkcs11_uri(uri)
    with open_signing_key(
        TokenSpec(
            module=softhsm.module,
            selector=parsed.selector,
            pin=PinSpec(kind=PinSourceKind.ENV, env_pin=Pin(softhsm.user_pin)),
        ),
        io=NoTerminal(),
        guard=PinGuard(tmp_path),
        warn=lambda s: None,
    ) as opened:
        assert opened.pair.cert is not None
        assert opened.pair.cert.der == pki_certificate(expected_cert)


def test_serial_and_slot_select_the_same_token(softhsm: SoftHsm, tmp_path: Path) -> None:
    with Pkcs11Module.load(softhsm.module) as module:
        b = next(t for t in module.list_tokens() if t.label == "signkit-test-b")
    for selector in ({"token_serial": b.serial}, {"slot": b.slot_id}):
        with open_key(softhsm, tmp_path, key_label="leader-vn", **selector) as opened:
            assert opened.token_name == b.display_name()


def test_ambiguous_key_lists_candidates(softhsm: SoftHsm, tmp_path: Path) -> None:
    with pytest.raises(KeyAmbiguousError) as err:
        with open_key(softhsm, tmp_path, token_label="signkit-test-a"):
            pass
    text = str(err.value)
    assert "3 keys match" in text and "signer-rsa2048" in text and "key-vn" in text
    assert err.value.hint and "--key-label" in err.value.hint


def test_ambiguous_token_lists_tokens(softhsm: SoftHsm, tmp_path: Path) -> None:
    with pytest.raises(TokenAmbiguousError) as err:
        with open_key(softhsm, tmp_path):
            pass
    assert "signkit-test-a" in str(err.value) and "signkit-demo" in str(err.value)


def test_no_matching_key_or_token(softhsm: SoftHsm, tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError) as err:
        with open_key(softhsm, tmp_path, token_label="signkit-test-a", key_label="nope"):
            pass
    assert "keys on the token" in str(err.value) and "signer-ec256" in str(err.value)
    with pytest.raises(TokenNotFoundError) as terr:
        with open_key(softhsm, tmp_path, token_label="no-such-token"):
            pass
    assert "signkit-demo" in str(terr.value)  # lists what is present


@pytest.mark.parametrize("algo", ["sha256", "sha384", "sha512"])
def test_rsa_pkcs1_and_pss_and_ecdsa(softhsm: SoftHsm, tmp_path: Path, algo: str) -> None:
    h = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[algo]
    data = b"signkit \xe2\x9c\x93" * 100
    with open_key(softhsm, tmp_path, token_label="signkit-test-a", key_label="signer-rsa2048") as k:
        for scheme in ("pkcs1v15", "pss"):
            sig = k.signer.sign(data, digest_algorithm=algo, scheme=scheme)
            verify(k.signer.certificate_der, data, sig, scheme, h)
    with open_key(softhsm, tmp_path, token_label="signkit-test-a", key_label="signer-ec256") as k:
        # SoftHSM has no CKM_ECDSA_SHA*: the host hashes and the token signs raw
        assert k.signer.plan(algo, "ecdsa")[1] is True
        sig = k.signer.sign(data, digest_algorithm=algo, scheme="ecdsa")
        verify(k.signer.certificate_der, data, sig, "ecdsa", h)


def test_sha1_refused_unless_allowed(softhsm: SoftHsm, tmp_path: Path) -> None:
    with open_key(softhsm, tmp_path, token_label="signkit-test-a", key_label="signer-rsa2048") as k:
        with pytest.raises(MechanismError, match="SHA-1"):
            k.signer.sign(b"x", digest_algorithm="sha1", scheme="pkcs1v15")
        with pytest.raises(MechanismError, match="cannot make ecdsa"):
            k.signer.sign(b"x", digest_algorithm="sha256", scheme="ecdsa")


def test_chain_certificates_come_with_the_signer(softhsm: SoftHsm, tmp_path: Path) -> None:
    with open_key(softhsm, tmp_path, token_label="signkit-demo") as k:
        chain = set(k.signer.chain_der)
    assert chain == {pki_certificate("interm-ca"), pki_certificate("root-ca")}


def test_always_authenticate_key_signs_repeatedly_with_one_pin_source(
    softhsm: SoftHsm, tmp_path: Path
) -> None:
    with open_key(softhsm, tmp_path, token_label="signkit-test-b", key_label="signer-rsa3072") as k:
        assert k.pair.key.always_authenticate
        for i in range(3):
            data = f"document {i}".encode()
            sig = k.signer.sign(data, digest_algorithm="sha256", scheme="pkcs1v15")
            verify(k.signer.certificate_der, data, sig, "pkcs1v15", hashes.SHA256())


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


@pytest.mark.parametrize(
    ("label", "scheme", "mechanism"),
    [("signer-rsa2048", "pkcs1v15", "RSA_PKCS"), ("signer-ec256", "ecdsa", "ECDSA")],
)
def test_token_offering_only_raw_mechanisms(
    softhsm: SoftHsm, tmp_path: Path, label: str, scheme: str, mechanism: str
) -> None:
    """SoftHSM's slots.mechanisms allow-list models a token without hash-on-token."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            RAWONLY_SCRIPT,
            softhsm.module,
            softhsm.user_pin,
            label,
            scheme,
            "sha256",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**softhsm.env(rawonly=True), "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        check=False,
    )
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


def test_rawonly_token_refuses_pss_clearly(softhsm: SoftHsm, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            RAWONLY_SCRIPT,
            softhsm.module,
            softhsm.user_pin,
            "signer-rsa2048",
            "pss",
            "sha256",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env={**softhsm.env(rawonly=True), "PATH": "/usr/bin:/bin"},
        cwd=REPO,
        check=False,
    )
    assert proc.returncode != 0
    assert "MechanismError" in proc.stderr and "no mechanism for pss" in proc.stderr


def test_resolve_module_by_discovery_picks_the_module_with_the_token(softhsm: SoftHsm) -> None:
    from signkit.tokens.discovery import ModuleCandidate

    candidates = [
        ModuleCandidate(
            path="/nonexistent/vendor.so",
            source="well-known",
            name="x",
            problem="file does not exist",
        ),
        ModuleCandidate(path=softhsm.module, source="p11-kit", name="softhsm2"),
    ]
    chosen = resolve_module(
        TokenSpec(selector=KeySelector(token_label="signkit-test-b")), discover=lambda: candidates
    )
    assert chosen == softhsm.module


def test_raw_context_login_signs_with_an_always_authenticate_key(softhsm: SoftHsm) -> None:
    """The ctypes path (C_SignInit, context-specific C_Login, C_Sign) on the real token."""
    from pkcs11 import Mechanism

    from signkit.tokens.pkcs11 import Pkcs11Module

    with Pkcs11Module.load(softhsm.module) as module:
        with module.open_token(KeySelector(token_label="signkit-test-b")) as session:
            session.login(Pin(softhsm.user_pin))
            pair = next(p for p in session.pairs() if p.key.label == "signer-rsa3072")
            key = session._find_private_key(pair.key)
            data = b"raw context login"
            sig = session.raw_context_sign(
                key, int(Mechanism.SHA256_RSA_PKCS), data, softhsm.user_pin.encode()
            )
            assert pair.cert is not None
            verify(pair.cert.der, data, sig, "pkcs1v15", hashes.SHA256())


def test_pin_pad_always_authenticate_asks_the_pad_per_signature(softhsm: SoftHsm) -> None:
    """SoftHSM has no PIN pad: the pad is simulated at the raw call, which is
    handed the PIN where a reader would collect it; signkit itself passes NULL."""
    from signkit.tokens.pkcs11 import Pkcs11Module

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
