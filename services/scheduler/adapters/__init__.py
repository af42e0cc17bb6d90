"""Outbound adapters of the scheduler."""
