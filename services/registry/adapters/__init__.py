"""Outbound adapters of the registry, named by technology."""
