"""Outbound adapters of the gateway."""
