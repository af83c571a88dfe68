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
    from signkit.tokens.lock import module_lock
    from signkit.tokens.pkcs11 import Pkcs11Module

    if len(argv) != 1:
        print(json.dumps({"error": "usage: python -m signkit.tokens.probe MODULE"}))
        return 2
    payload: dict[str, object]
    try:
        with module_lock(argv[0]), Pkcs11Module.load(argv[0]) as module:
            tokens = []
            for info, objects in module.list_tokens_with_objects():
                entry = info.to_json()
                if objects is not None:
                    entry["objects"] = objects.to_json()
                tokens.append(entry)
            payload = {"library": module.library_info(), "tokens": tokens}
    except SignkitError as exc:
        payload = {"error": exc.message + (f" ({exc.hint})" if exc.hint else "")}
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
