"""Tamper-evident audit log (JSON Lines hash chain)."""
