"""Document formats that plug into the batch engine (PDF and XML)."""
