"""Certificates, trust anchors and bundles, chain validation, revocation, time-stamps.

- ``anchors``: what is trusted (``--trust`` files, directories, named bundles, the OS store)
- ``certs``: certificate facts for people (names, usages, fingerprints)
- ``chain``: the one path validator, and the pre-signing signer check built on it
- ``revocation``: the evidence a long-term signature embeds
- ``timestamps``: the RFC 3161 client and the checks of a time-stamp token
"""
