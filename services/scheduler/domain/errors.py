"""Domain errors of the scheduler."""


class PredictionNotFound(LookupError):
    pass


class VersionNotFound(LookupError):
    pass


class InvalidPredictionRequest(ValueError):
    pass


class InvalidIdempotencyKeyReuse(ValueError):
    """An Idempotency-Key came back with a request other than the one it was first used with."""


class QueueUnavailable(RuntimeError):
    """The prediction cannot be stored and queued right now (NATS or PostgreSQL down); nothing was accepted."""
