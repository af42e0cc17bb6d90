"""Errors raised by the event store."""


class ConcurrencyError(RuntimeError):
    """Another writer appended to the stream first; reload and retry."""

    def __init__(self, stream_id: str, expected_version: int, actual_version: int | None = None) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id} expected at version {expected_version}, found {actual_version}"
        )


class AlreadyTracked(RuntimeError):
    """The consumer had processed this message already (a redelivery racing the first delivery)."""
