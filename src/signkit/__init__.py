"""signkit: sign and verify PDFs and XML with keys on PKCS#11 tokens."""

__version__ = "0.1.0"
