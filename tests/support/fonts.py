"""The fonts a test run has, chosen by the tests rather than by the host.

signkit looks its serif fonts up under $SIGNKIT_FONT_ROOT when that is set
(src/signkit/fontfiles.py); the suite gives it a directory holding only
Liberation Serif, so a host with Times New Roman installed changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from support.infra import InfraError

LIBERATION = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf"
LIBERATION_ITALIC = "/usr/share/fonts/truetype/liberation2/LiberationSerif-Italic.ttf"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"
TIMES = "/usr/share/fonts/truetype/msttcorefonts/Times_New_Roman.ttf"


def font_root(directory: Path, fonts: dict[str, str]) -> Path:
    """A font root where each path of ``fonts`` (as signkit looks for it) is
    the host's font file named by the value."""
    for path, real in fonts.items():
        if not os.path.exists(real):
            raise InfraError(f"{real} is missing: install fonts-liberation2 and fonts-dejavu-core")
        target = directory / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(real)
    return directory
