"""Outbound adapters of the runner: the model worker process and its supervisor."""
