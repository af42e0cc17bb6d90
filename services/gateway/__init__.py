"""Gateway: the public, Replicate-compatible HTTP API."""
