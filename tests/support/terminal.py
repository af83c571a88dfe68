"""Run a command on a pseudo-terminal, as a person at a terminal does."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Session:
    """What the terminal showed, and how the command ended."""

    returncode: int
    transcript: str
    """Everything written to the terminal (ANSI colours removed), including what
    the terminal echoed of the keys typed."""
    prompts: int
    """How many of the expected prompts appeared."""


def on_terminal(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: Path,
    replies: Sequence[tuple[str, str]] = (),
    timeout: float = 120,
) -> Session:
    """Run ``argv`` with a new pty as its controlling terminal (stdin, stdout,
    stderr and /dev/tty). For each (prompt, reply), wait until ``prompt``
    appears after the previous one, then type ``reply`` and Enter."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal now
        try:
            os.chdir(cwd)
            os.execve(argv[0], list(argv), env)  # noqa: S606 - argv is the test's own
        finally:
            os._exit(127)
    deadline = time.monotonic() + timeout
    raw = b""
    shown = 0
    prompts = 0

    def read_some() -> bool:
        nonlocal raw
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from {argv[:4]}: {raw[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            raise TimeoutError(f"no answer from {argv[:4]}: {raw[-500:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the command closed the terminal (it ended)
            chunk = b""
        raw += chunk
        return bool(chunk)

    try:
        for prompt, reply in replies:
            while prompt not in _text(raw)[shown:]:
                if not read_some():
                    break
            else:
                shown = _text(raw).index(prompt, shown) + len(prompt)
                prompts += 1
                os.write(fd, reply.encode() + b"\n")
                continue
            break
        while read_some():
            pass
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # the pid this call forked
        raise
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return Session(
        returncode=os.waitstatus_to_exitcode(status), transcript=_text(raw), prompts=prompts
    )


def _text(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode("utf-8", "replace")).replace("\r\n", "\n")
