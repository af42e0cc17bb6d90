"""Outbound adapters of billing."""
