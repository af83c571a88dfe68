"""`signkit sign pdf|xml|cms`: many documents, one token session, one PIN entry.

Each format's command is in its own module (sign_pdf, sign_xml, sign_cms) and the body
they share in sign_run; importing this module registers them all on `app`."""

from __future__ import annotations

from .framework import new_app

app = new_app("sign", "Sign documents in bulk with a token key.", no_args_is_help=True)


@app.callback()
def group() -> None:
    """Sign documents in bulk with a token key."""


# After `app` exists: each format's module adds its command to it.
from . import sign_cms, sign_pdf, sign_xml  # noqa: E402, F401
