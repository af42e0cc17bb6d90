"""Billing: meters the predict time of finished predictions per account and hardware."""
