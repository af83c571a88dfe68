"""Child-process entry point: load one PKCS#11 module and print its tokens as JSON.

Run as ``python -m signkit.tokens.probe MODULE``. Kept apart so that a module
that hangs or crashes takes down only this process.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    """Probe ``argv[0]``; always print one JSON object on stdout."""
    from signkit.errors import SignkitError
    from signkit.tokens.pkcs11 import Pkcs11Module

    if len(argv) != 1:
        print(json.dumps({"error": "usage: python -m signkit.tokens.probe MODULE"}))
        return 2
    try:
        with Pkcs11Module.load(argv[0]) as module:
            payload = {
                "library": module.library_info(),
                "tokens": [t.to_json() for t in module.list_tokens()],
            }
    except SignkitError as exc:
        payload = {"error": exc.message}
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
