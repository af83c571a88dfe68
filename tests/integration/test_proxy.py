"""OCSP, CRL and AIA fetches and the time-stamp requests go through the proxy
that http_proxy names, and around it for the hosts no_proxy lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.infra import PKI_BASE, TSA_URL, PkiServices, SoftHsm, batch_of, pki_certificate
from support.proxy import recording_proxy
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

NO_PROXY = {"no_proxy": "", "NO_PROXY": "", "https_proxy": "", "HTTPS_PROXY": ""}


def via(proxy_url: str, **extra: str) -> dict[str, str]:
    return {**NO_PROXY, "http_proxy": proxy_url, "HTTP_PROXY": "", **extra}


def test_revocation_and_aia_fetches_use_the_proxy(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    leaf = tmp_path / "staff.der"  # without its issuing CA: AIA must fetch it
    leaf.write_bytes(pki_certificate("signer-rsa3072"))
    args = ("cert", "check", "--file", str(leaf), "--trust", str(trust), "--no-audit", "--json")
    with recording_proxy() as proxy:
        proc = signkit(*args, env=via(proxy.url))
        assert proc.returncode == 0, proc.stderr
        (cert,) = json.loads(proc.stdout)["certificates"]
        assert cert["chain"] == "trusted" and cert["revocation"] == "good"
        seen = list(proxy.seen)
        # the same run, the PKI's host listed in no_proxy: straight there
        proxy.seen.clear()
        direct = signkit(*args, env=via(proxy.url, no_proxy="127.0.0.1"))
        assert direct.returncode == 0, direct.stderr
        assert proxy.seen == []
    assert ("POST", f"{PKI_BASE}/ocsp/interm-ca") in seen, seen  # OCSP
    assert any(m == "GET" and u.startswith(f"{PKI_BASE}/certs/") for m, u in seen), seen  # AIA
    assert any(m == "GET" and u.endswith(".crl") for m, u in seen), seen  # the CA's CRL


def test_signing_fetches_and_time_stamps_use_the_proxy(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    inbox = batch_of(tmp_path / "in", 1)
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    with recording_proxy() as proxy:
        proc = signkit(
            "sign", "pdf", str(inbox), "--output-dir", str(tmp_path / "out"),
            "--token-label", "signkit-demo", "--trust", str(trust), "--level", "B-LT",
            "--tsa", TSA_URL, "--no-audit", env={**env, **via(proxy.url)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        seen = list(proxy.seen)
    assert ("POST", TSA_URL) in seen, seen
    assert ("POST", f"{PKI_BASE}/ocsp/interm-ca") in seen, seen
