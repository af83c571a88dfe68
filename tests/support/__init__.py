"""Shared test helpers: the SoftHSM tokens, the PKI services, running signkit."""
