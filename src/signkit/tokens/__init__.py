"""Token layer: PKCS#11 modules, tokens, keys, PINs and the Signer protocol.

Only ``signkit.tokens.pkcs11`` imports python-pkcs11; import it lazily.
"""

from signkit.tokens.model import CertInfo, KeyInfo, KeyPair, KeySelector, TokenFlags, TokenInfo
from signkit.tokens.signer import Signer

__all__ = ["CertInfo", "KeyInfo", "KeyPair", "KeySelector", "Signer", "TokenFlags", "TokenInfo"]
