"""Why a model directory was refused."""


class ModelPackageError(ValueError):
    """A model directory cannot be packaged: missing cog.yaml, bad predictor reference, import failure."""
