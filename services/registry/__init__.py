"""Registry service: accounts, API tokens, models and their immutable versions."""
