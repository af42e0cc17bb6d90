"""Operator-configured hardware SKUs, in Replicate's names, and the runner label that provides each.

A runner node serves one label (`COGWHEEL_HARDWARE`) and pulls `runner.jobs.<label>`. The default catalogue
maps every GPU SKU to the label `gpu`, so a plain `COGWHEEL_HARDWARE=gpu` node serves all of them; an operator
with several kinds of GPU gives each SKU its own label (say `"runner": "gpu-h100"`) and starts those nodes with
that label. Hardware that is not in the catalogue (the `gpu` of versions that set `build.gpu`, or SKUs
recorded before the catalogue changed) runs on the runner label of the same name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CATALOG_ENV = "COGWHEEL_HARDWARE_CATALOG"
DEFAULT_CATALOG_PATH = Path(__file__).with_name("default_catalog.json")
# SKUs and runner labels become NATS subject tokens and URL parts.
_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"


class HardwareSku(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(pattern=_NAME_PATTERN)
    # Display name, as Replicate's `GET /v1/hardware` shows it.
    name: str = Field(min_length=1, max_length=200)
    gpu_memory_gb: int = Field(default=0, ge=0)
    # Runner label (`COGWHEEL_HARDWARE` of the nodes that run it); jobs go to `runner.jobs.<runner>`.
    runner: str = Field(pattern=_NAME_PATTERN)


class UnknownHardware(ValueError):
    def __init__(self, sku: str, valid: list[str]) -> None:
        self.sku = sku
        self.valid = valid
        super().__init__(f"unknown hardware {sku!r}: must be one of {', '.join(valid)}")


class HardwareCatalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: tuple[HardwareSku, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> HardwareCatalog:
        skus = [item.sku for item in self.hardware]
        duplicates = sorted({sku for sku in skus if skus.count(sku) > 1})
        if duplicates:
            raise ValueError(f"hardware SKUs listed twice: {', '.join(duplicates)}")
        return self

    @property
    def skus(self) -> list[str]:
        """In catalogue order."""
        return [item.sku for item in self.hardware]

    def get(self, sku: str) -> HardwareSku | None:
        return next((item for item in self.hardware if item.sku == sku), None)

    def require(self, sku: str) -> HardwareSku:
        found = self.get(sku)
        if found is None:
            raise UnknownHardware(sku, self.skus)
        return found

    def runner_label(self, hardware: str) -> str:
        """The label whose runners take jobs for `hardware`; hardware outside the catalogue is its own label."""
        found = self.get(hardware)
        return found.runner if found is not None else hardware


def parse_catalog(raw: str, source: str) -> HardwareCatalog:
    try:
        document = json.loads(raw)
        if isinstance(document, list):
            document = {"hardware": document}
        return HardwareCatalog.model_validate(document)
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"invalid hardware catalogue in {source}: {exc}") from exc


@lru_cache(maxsize=1)
def default_catalog() -> HardwareCatalog:
    return parse_catalog(DEFAULT_CATALOG_PATH.read_text(), str(DEFAULT_CATALOG_PATH))


def load_catalog(environ: Mapping[str, str] | None = None) -> HardwareCatalog:
    """`COGWHEEL_HARDWARE_CATALOG` (a JSON document, or the path of one) or else the shipped default.

    The document is `{"hardware": [{"sku", "name", "gpu_memory_gb", "runner"}, ...]}` or just the list; it
    replaces the default catalogue entirely. Every service reads the same variable, so they agree.
    """
    value = (os.environ if environ is None else environ).get(CATALOG_ENV, "").strip()
    if not value:
        return default_catalog()
    if value.startswith(("{", "[")):
        return parse_catalog(value, CATALOG_ENV)
    path = Path(value)
    try:
        raw = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read the hardware catalogue {path} ({CATALOG_ENV}): {exc}") from exc
    return parse_catalog(raw, str(path))
