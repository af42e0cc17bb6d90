"""The hardware catalogue: which SKUs models and deployments may ask for, and which runners serve them."""

from libs.hardware.catalog import (
    CATALOG_ENV,
    HardwareCatalog,
    HardwareSku,
    UnknownHardware,
    default_catalog,
    load_catalog,
)

__all__ = ["CATALOG_ENV", "HardwareCatalog", "HardwareSku", "UnknownHardware", "default_catalog", "load_catalog"]
