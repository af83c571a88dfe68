"""sign cms streams its content: a file five times the memory bound is
signed detached and attached with the whole process tree (signkit and its
workers) under 128 MiB, and openssl cms -verify judges both signatures.

SIGNKIT_TEST_LARGE_MIB sets the size by hand (2098 for a file past 2**31
bytes; CI keeps the default for its disk and time). openssl cannot read a
DER structure over 2**31 bytes (asn1_d2i_read_bio: too long): past it, the
attached signature's content is compared here, read from the DER headers by
this test, and its signature judged by signkit verify."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.cmscheck import pem_files
from support.infra import SoftHsm
from support.memory import measure
from support.runner import cron_env

pytestmark = pytest.mark.softhsm

LIMIT_KIB = 128 * 1024
SIZE = int(os.environ.get("SIGNKIT_TEST_LARGE_MIB", str(5 * LIMIT_KIB // 1024))) << 20
OPENSSL_DER_MAX = 2**31


def write_big(path: Path, size: int) -> str:
    """A file of ``size`` pseudo-random-looking bytes (not all zeros: nothing
    along the way may compress or skip it); its SHA-256."""
    block = hashlib.sha256(b"signkit").digest() * (1 << 15)  # 1 MiB
    h = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        counter = 0
        while left:
            chunk = (counter.to_bytes(8, "big") + block)[: min(len(block), left)]
            fh.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            counter += 1
    return h.hexdigest()


@pytest.mark.parametrize("attached", [False, True], ids=["detached", "attached"])
def test_two_gib_file_signs_in_bounded_memory(
    softhsm: SoftHsm, tmp_path: Path, attached: bool
) -> None:
    src = tmp_path / "archive.bin"
    digest = write_big(src, SIZE)
    env = cron_env(softhsm, tmp_path / "state")
    cmd = [
        sys.executable, "-m", "signkit", "sign", "cms", str(src), "--module", softhsm.module,
        "--token-label", "signkit-test-a", "--key-label", "signer-rsa2048",
        "--revocation", "off", "--no-audit", "--json",
        *(["--attached"] if attached else []),
    ]  # fmt: skip
    figures, stdout, stderr = measure(cmd, env)
    assert figures["code"] == 0, stderr
    report = json.loads(stdout)
    assert report["totals"]["signed"] == 1
    assert report["documents"][0]["sha256_before"] == digest
    print(f"{SIZE >> 20} MiB {'attached' if attached else 'detached'}: {figures}")
    assert figures["tree_kib"] <= LIMIT_KIB, figures
    assert figures["single_kib"] <= LIMIT_KIB, figures
    sig = src.with_name(src.name + (".p7m" if attached else ".p7s"))
    if attached:
        assert sig.stat().st_size > SIZE
    root, _ = pem_files(tmp_path)
    if not attached or sig.stat().st_size < OPENSSL_DER_MAX:
        out = tmp_path / "content.out"
        cmd = [
            "openssl", "cms", "-verify", "-binary", "-purpose", "any", "-inform", "DER",
            "-in", str(sig), "-CAfile", str(root), "-out", str(out),
            *([] if attached else ["-content", str(src)]),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        if attached:
            assert sha256_file(out) == digest
        return
    assert embedded_content_sha256(sig) == digest
    proc = subprocess.run(
        [sys.executable, "-m", "signkit", "verify", str(sig), "--trust", str(root),
         "--no-audit", "--revocation", "off", "--json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["documents"][0]["verdict"]["indication"] == "PASSED"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _header(fh: Any) -> tuple[int, int]:
    """(tag, length) of the DER element at the file position."""
    tag, first = fh.read(2)
    if first < 0x80:
        return tag, first
    return tag, int.from_bytes(fh.read(first & 0x7F), "big")


def embedded_content_sha256(path: Path) -> str:
    """SHA-256 of ContentInfo.content.encapContentInfo.eContent, streamed."""
    with path.open("rb") as fh:
        _header(fh)  # ContentInfo SEQUENCE
        tag, length = _header(fh)  # contentType OID
        fh.seek(length, 1)
        _header(fh)  # [0] EXPLICIT
        _header(fh)  # SignedData SEQUENCE
        for _ in range(2):  # version, digestAlgorithms
            tag, length = _header(fh)
            fh.seek(length, 1)
        _header(fh)  # encapContentInfo SEQUENCE
        tag, length = _header(fh)  # eContentType
        fh.seek(length, 1)
        assert _header(fh)[0] == 0xA0
        tag, length = _header(fh)
        assert tag == 0x04
        h = hashlib.sha256()
        while length:
            chunk = fh.read(min(1 << 20, length))
            h.update(chunk)
            length -= len(chunk)
        return h.hexdigest()
