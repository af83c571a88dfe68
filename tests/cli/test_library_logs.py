"""A library's own log lines (pyHanko's certificate fetcher) are English for
developers: not on a clerk's screen, shown with -v."""

from __future__ import annotations

from pathlib import Path

from support.runner import Runner, wrapped

# The fetcher's warning, logged while the command runs (here while the trust
# bundles are read, in the main process, as `cert check` fetches).
LOGS = """
import logging

import signkit.pki.bundles as bundles

real = bundles.installed


def installed(environ=None):
    logging.getLogger("pyhanko_certvalidator.fetchers").warning(
        "Error during certificate fetch job, skipping..."
    )
    return real(environ)


bundles.installed = installed
"""


def test_library_log_lines_only_with_verbose(signkit: Runner, tmp_path: Path) -> None:
    program = wrapped(tmp_path, LOGS)
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "LANG": "vi_VN.UTF-8"}
    plain = signkit("trust", "list", program=program, env=env)
    assert plain.returncode == 0, plain.stderr
    assert "chưa cài bộ chứng thư gốc tin cậy nào" in plain.stderr, plain.stderr
    assert "Error during certificate fetch job" not in plain.stderr, plain.stderr
    verbose = signkit("trust", "list", "-v", program=program, env=env)
    assert "Error during certificate fetch job, skipping..." in verbose.stderr, verbose.stderr
