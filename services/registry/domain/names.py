"""Validation of the names and enum values that end up in stream ids and URLs."""

import re

from services.registry.domain.errors import InvalidRequest

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Model names appear in URLs as `owner/name`, so they are kept lower-case like Replicate's.
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
_VERSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_HARDWARE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

ACCOUNT_TYPES = ("user", "organization")
VISIBILITIES = ("public", "private")
DEFAULT_HARDWARE = "cpu"
GPU_HARDWARE = "gpu"
MAX_CONCURRENCY = 1024


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidRequest(f"invalid {what}: {value!r}")
    return value


def username(value: str) -> str:
    return _check(_USERNAME, value, "username")


def model_name(value: str) -> str:
    return _check(_MODEL_NAME, value, "model name")


def deployment_name(value: str) -> str:
    """Deployment names follow model names: lower-case, as they appear in URLs."""
    return _check(_MODEL_NAME, value, "deployment name")


def version_id(value: str) -> str:
    return _check(_VERSION_ID, value, "version id")


def hardware(value: str) -> str:
    return _check(_HARDWARE, value or DEFAULT_HARDWARE, "hardware")


def version_hardware(model_hardware: str, gpu: bool) -> str:
    """A version that needs a GPU on a CPU model runs on generic GPU hardware; otherwise the model's hardware."""
    return GPU_HARDWARE if gpu and model_hardware == DEFAULT_HARDWARE else model_hardware


def concurrency(value: int) -> int:
    value = value or 1
    if not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidRequest(f"concurrency.max must be between 1 and {MAX_CONCURRENCY}, not {value}")
    return value


def account_type(value: str) -> str:
    value = value or "user"
    if value not in ACCOUNT_TYPES:
        raise InvalidRequest(f"account type must be one of {', '.join(ACCOUNT_TYPES)}, not {value!r}")
    return value


def visibility(value: str) -> str:
    value = value or "public"
    if value not in VISIBILITIES:
        raise InvalidRequest(f"visibility must be one of {', '.join(VISIBILITIES)}, not {value!r}")
    return value
