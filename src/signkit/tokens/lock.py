"""One signkit process at a time opens a module's tokens and logs in.

Two runs on one SoftHSM token at once failed now and then: SoftHSM rewrites
a token's file at every login, and a second process loading the module or
logging in at that moment reads it half-written (a token missing from the
slot list, CKR_GENERAL_ERROR at C_Login). Other modules keep state in
shared files too. Loading, enumerating, opening and logging in therefore
happen under an exclusive file lock; signing afterwards does not, so two
batches still run side by side.

The lock is keyed by the module's real path, not only by the token: the
token is not known before the module has listed its slots, and the listing
is what races. It lives in the user's runtime directory
($XDG_RUNTIME_DIR/signkit/locks), else the state directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from signkit.errors import TokenOperationError

DEFAULT_LOCK_WAIT = 120.0
"""Seconds to wait for another run's open or login (each holds the lock briefly)."""


def lock_dir() -> Path:
    """$XDG_RUNTIME_DIR/signkit/locks when that directory exists, else the state directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "signkit" / "locks"
    from signkit.tokens.guard import default_state_dir

    return default_state_dir() / "locks"


def lock_path(module_path: str, directory: Path | None = None) -> Path:
    """The lock file of ``module_path``."""
    key = hashlib.sha256(os.path.realpath(module_path).encode("utf-8")).hexdigest()[:32]
    return (directory or lock_dir()) / f"module-{key}.lock"


@contextmanager
def module_lock(
    module_path: str, *, wait: float = DEFAULT_LOCK_WAIT, directory: Path | None = None
) -> Iterator[None]:
    """Hold the exclusive lock of ``module_path`` (waiting up to ``wait`` seconds)."""
    path = lock_path(module_path, directory)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise TokenOperationError(
            f"cannot create the token lock file ({exc.strerror})",
            subject=str(path),
            hint="check that the state or runtime directory is writable",
        ) from exc
    try:
        deadline = time.monotonic() + wait
        pause = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TokenOperationError(
                        f"another signkit run has been opening this module's token for "
                        f"over {wait:g} s",
                        subject=module_path,
                        hint=f"wait for it to finish (lock file {path})",
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.2)
        yield
    finally:
        os.close(fd)
