"""Token layer: PKCS#11 modules, tokens, keys, PINs and the Signer protocol.

Only ``signkit.tokens.pkcs11`` imports python-pkcs11; import it lazily. This
package imports nothing itself so that the CLI starts fast.
"""
