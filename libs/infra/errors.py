"""The one exception type raised by the embedded server launchers."""

__all__ = ["InfraError"]


class InfraError(RuntimeError):
    """A server could not be located, started or stopped; the message is one line meant for humans."""
