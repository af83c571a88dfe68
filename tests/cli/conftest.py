"""What an in-process run of the CLI changes for its process is undone after
each test: the CLI sets LANGUAGE and gettext's domain (the framework's own
messages), the selected language, and $SIGNKIT_CONFIG from --config."""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator

import pytest

from signkit import i18n


@pytest.fixture(autouse=True)
def _process_settings() -> Iterator[None]:
    names = ("LANGUAGE", "SIGNKIT_CONFIG")
    saved = {name: os.environ.pop(name, None) for name in names}
    domain = gettext.textdomain()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        gettext.textdomain(domain)
        i18n.set_language("en")
