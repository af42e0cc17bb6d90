"""Pure webhook rules: event ordering, which webhook an event triggers, and the retry policy."""
