"""Pure webhook rules: event ordering, which webhook an event triggers, retries, signing, allowed destinations."""
