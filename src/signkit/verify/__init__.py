"""Verification of signed documents and certificates (no token needed)."""
