"""Fixtures for signing tests: trust anchor file, signkit with module/PIN/audit set."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.infra import PkiServices, SoftHsm, pki_certificate
from support.runner import Runner


@pytest.fixture
def trust(tmp_path: Path) -> Path:
    path = tmp_path / "root.der"
    path.write_bytes(pki_certificate("root-ca"))
    return path


@pytest.fixture
def sk(signkit: Runner, softhsm: SoftHsm, pki: PkiServices, tmp_path: Path, trust: Path):  # type: ignore[no-untyped-def]
    """signkit with the module, PIN (from the environment, as cron gives it) and audit log set."""

    def run(*args: str, env: dict[str, str] | None = None, **kw):  # type: ignore[no-untyped-def]
        full_env = {
            "SIGNKIT_MODULE": softhsm.module,
            "SIGNKIT_PIN": softhsm.user_pin,
            **(env or {}),
        }
        return signkit(
            "sign", "pdf", *args, "--audit-log", str(tmp_path / "audit.jsonl"), env=full_env, **kw
        )

    return run
