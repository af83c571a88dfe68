"""Run a command under a process that adopts orphans (PR_SET_CHILD_SUBREAPER),
as a container's first process or a service manager does, and write down
every process the command left behind: still running, or ended and never
reaped (a zombie). Whatever the command's processes leave, their children's
children included, is reparented here when their parent ends.

As a script: ``python subreaper.py LEFT_FILE COMMAND...`` writes
``pid:state`` of each process left (nothing when none) and exits with the
command's exit code."""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve()


def under_subreaper(left: Path, *command: str) -> list[str]:
    """The command line that runs ``command`` so, writing what it left into ``left``."""
    return [sys.executable, str(SCRIPT), str(left), *command]


def main() -> int:
    import ctypes
    import glob
    import os
    import subprocess

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    code = subprocess.run(sys.argv[2:], check=False).returncode
    left = []
    for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
        with open(path) as fh:
            children = fh.read().split()
        for child in children:
            with open(f"/proc/{child}/stat") as fh:
                left.append(child + ":" + fh.read().rsplit(")", 1)[1].split()[0])
    Path(sys.argv[1]).write_text(" ".join(sorted(left)))
    return code


if __name__ == "__main__":
    sys.exit(main())
