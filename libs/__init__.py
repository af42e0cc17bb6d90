"""Shared, service-agnostic libraries."""
