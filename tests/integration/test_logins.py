"""Exactly one login per run, counted by a witness outside signkit: OpenSC's
pkcs11-spy between signkit and SoftHSM logs every PKCS#11 call of the real
`signkit sign pdf|xml` batch. CKA_ALWAYS_AUTHENTICATE keys get one
context-specific login per signature, from the same PIN source."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from support.infra import FIXTURES, SoftHsm, batch_of, spy_calls, spy_module
from support.pdfcheck import pdfsig
from support.runner import Runner
from support.xmlcheck import assert_xmlsec_ok

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

DOCS = 6
PLAIN = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
ALWAYS_AUTH = ["--token-label", "signkit-test-b", "--key-label", "signer-rsa3072"]


def inputs(kind: str, directory: Path) -> Path:
    if kind == "pdf":
        return batch_of(directory, DOCS)
    directory.mkdir(parents=True)
    for i in range(DOCS):
        shutil.copy(FIXTURES / "xml" / "generic.xml", directory / f"d{i:03d}.xml")
    return directory


def pin_bytes(block: str) -> bytes:
    """The PIN bytes pkcs11-spy dumped for one C_Login: its hex column."""
    out = b""
    for line in block.splitlines():
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) >= 2 and re.fullmatch(r"[0-9A-Fa-f]{8}", parts[0]):
            out += bytes.fromhex(parts[1])
    return out


def logins(log: Path) -> list[tuple[str, str, bytes]]:
    """(user type, return value, PIN bytes) of each C_Login in a spy log."""
    out = []
    for name, block in spy_calls(log):
        if name == "C_Login":
            user = re.search(r"userType = (\w+)", block)
            rv = re.search(r"Returned:\s+\d+ (\w+)", block)
            assert user and rv, block
            out.append((user.group(1), rv.group(1), pin_bytes(block)))
    return out


def run_batch(  # type: ignore[no-untyped-def]
    signkit: Runner,
    softhsm: SoftHsm,
    tmp_path: Path,
    trust: Path,
    kind: str,
    key: list[str],
    *pin_args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
):
    src = inputs(kind, tmp_path / "in")
    spylog = tmp_path / "spy.log"
    proc = signkit(
        "sign",
        kind,
        str(src),
        "--output-dir",
        str(tmp_path / "out"),
        "--module",
        spy_module(),
        *key,
        "--trust",
        str(trust),
        "--no-audit",
        "--json",
        *pin_args,
        env={"PKCS11SPY": softhsm.module, "PKCS11SPY_OUTPUT": str(spylog), **(env or {})},
        input=input,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"]["signed"] == DOCS
    outputs = sorted((tmp_path / "out").iterdir())
    assert len(outputs) == DOCS
    for out in outputs[:2]:  # the referees agree that what was signed is valid
        if kind == "pdf":
            assert pdfsig(out).count("Signature is Valid") == 1
        else:
            assert_xmlsec_ok(out, tmp_path)
    return spylog


@pytest.mark.parametrize("kind", ["pdf", "xml"])
def test_a_batch_logs_in_exactly_once(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, pki, tmp_path: Path, trust: Path, kind: str
) -> None:
    spylog = run_batch(
        signkit,
        softhsm,
        tmp_path,
        trust,
        kind,
        PLAIN,
        env={"SIGNKIT_PIN": softhsm.user_pin},
    )
    assert logins(spylog) == [("CKU_USER", "CKR_OK", softhsm.user_pin.encode())]
    # one signature per document, all in the one logged-in session
    assert [name for name, _block in spy_calls(spylog)].count("C_SignInit") == DOCS


@pytest.mark.parametrize("kind", ["pdf", "xml"])
@pytest.mark.parametrize("source", ["env", "file", "stdin"])
def test_an_always_authenticate_key_logs_in_once_per_signature_from_one_pin_source(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, pki, tmp_path: Path, trust: Path, kind: str, source: str
) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.user_pin + "\n")
    pin_file.chmod(0o600)
    how = {
        "env": ([], {"SIGNKIT_PIN": softhsm.user_pin}, None),
        "file": (["--pin-file", str(pin_file)], {}, None),
        "stdin": (["--pin-stdin"], {}, softhsm.user_pin + "\n"),
    }
    args, env, stdin = how[source]
    spylog = run_batch(
        signkit, softhsm, tmp_path, trust, kind, ALWAYS_AUTH, *args, env=env, input=stdin
    )
    seen = logins(spylog)
    pin = softhsm.user_pin.encode()
    assert seen[0] == ("CKU_USER", "CKR_OK", pin)
    # one context-specific login per signature, each with the run's one PIN
    assert seen[1:] == [("CKU_CONTEXT_SPECIFIC", "CKR_OK", pin)] * DOCS
    # and each comes between the C_SignInit and the C_Sign it authorises
    names = [name for name, _block in spy_calls(spylog)]
    for i, name in enumerate(names):
        if name == "C_Login" and i > names.index("C_Login"):
            assert names[i - 1] == "C_SignInit" and names[i + 1] == "C_Sign", names[i - 2 : i + 3]


def test_the_pin_is_not_in_any_other_call(  # type: ignore[no-untyped-def]
    signkit: Runner, softhsm: SoftHsm, pki, tmp_path: Path, trust: Path
) -> None:
    """The spy sees every byte signkit hands the token: the PIN goes to C_Login only."""
    spylog = run_batch(
        signkit,
        softhsm,
        tmp_path,
        trust,
        "pdf",
        ALWAYS_AUTH,
        env={"SIGNKIT_PIN": softhsm.user_pin},
    )
    hexpin = " ".join(f"{b:02X}" for b in softhsm.user_pin.encode())
    for name, block in spy_calls(spylog):
        if name != "C_Login":
            assert softhsm.user_pin not in block and hexpin not in block, name
