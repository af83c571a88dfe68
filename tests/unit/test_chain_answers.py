"""Offline chain validations answered once per distinct input: a batch from
one signer validates its chain once, and a different input (another
certificate, other revocation data, another validation time, another policy)
never gets a cached answer."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signkit.pki import chain
from signkit.verify.verdict import Indication
from support.infra import pki_certificate


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []
    real = chain._attempt

    def spy(cert_der: bytes, *args: Any) -> chain.ChainResult:
        seen.append(cert_der)
        return real(cert_der, *args)

    monkeypatch.setattr(chain, "_attempt", spy)
    monkeypatch.setattr(chain, "_ANSWERS", type(chain._ANSWERS)())
    return seen


def _settings(**kw: Any) -> chain.Settings:
    defaults: dict[str, Any] = {
        "anchors": (pki_certificate("root-ca"),),
        "revocation": "off",
        "offline": True,
        "now": datetime(2026, 6, 1, tzinfo=UTC),
    }
    return chain.Settings(**{**defaults, **kw})


def test_the_same_inputs_are_validated_once(attempts: list[bytes]) -> None:
    signer, interm = pki_certificate("signer-rsa2048"), pki_certificate("interm-ca")
    first = chain.validate_chain(signer, [interm], _settings())
    first.warnings.append("a caller's own note")  # callers may change what they get
    second = chain.validate_chain(signer, [interm], _settings())
    assert len(attempts) == 1
    assert second.indication is first.indication is Indication.PASSED
    assert "a caller's own note" not in second.warnings
    assert second.path == first.path


@pytest.mark.parametrize(
    "change",
    ["certificate", "chain", "ocsp", "crl", "time", "revocation", "weak", "anchors", "online"],
)
def test_a_different_input_is_validated_again(attempts: list[bytes], change: str) -> None:
    signer, interm = pki_certificate("signer-rsa2048"), pki_certificate("interm-ca")
    chain.validate_chain(signer, [interm], _settings())
    cert, others, settings = signer, [interm], _settings()
    ocsps: list[bytes] = []
    crls: list[bytes] = []
    if change == "certificate":
        cert = pki_certificate("signer-ec256")
    elif change == "chain":
        others = []
    elif change == "ocsp":
        ocsps = [b"an OCSP response"]
    elif change == "crl":
        crls = [b"a CRL"]
    elif change == "time":
        settings = _settings(now=datetime(2026, 6, 1, tzinfo=UTC) + timedelta(seconds=1))
    elif change == "revocation":
        settings = _settings(revocation="soft")
    elif change == "weak":
        settings = _settings(allow_weak=True)
    elif change == "anchors":
        settings = _settings(anchors=())
    else:
        settings = _settings(offline=False)
    # made-up revocation data fails to parse, after the attempt
    with contextlib.suppress(ValueError):
        chain.validate_chain(cert, others, settings, embedded_ocsps=ocsps, embedded_crls=crls)
    assert len(attempts) == 2, change
    if change == "online":  # fetching may change the answer: never kept
        chain.validate_chain(cert, others, settings)
        assert len(attempts) == 3
