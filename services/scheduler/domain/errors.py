"""Domain errors of the scheduler."""


class PredictionNotFound(LookupError):
    pass


class VersionNotFound(LookupError):
    pass


class InvalidPredictionRequest(ValueError):
    pass
