"""Outbound adapters of the webhook dispatcher."""
