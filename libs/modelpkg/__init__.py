"""Model directories as content-addressed packages: cog.yaml, environments, OpenAPI schema, object-store transfer."""

from libs.modelpkg.config import CogConfig, load_cog_config
from libs.modelpkg.envs import ensure_environment
from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.openapi import build_openapi
from libs.modelpkg.package import (
    Package,
    UnpackLimits,
    build_package,
    extract_package,
    iter_model_files,
    write_package,
)
from libs.modelpkg.schema import ModelSchema, generate_openapi_schema
from libs.modelpkg.store import (
    VERSIONS_BUCKET,
    InspectedModel,
    PushedPackage,
    delete_package,
    fetch_package,
    has_package,
    inspect_model_dir,
    push_model_dir,
    push_package_file,
    versions_bucket,
)

__all__ = [
    "VERSIONS_BUCKET",
    "CogConfig",
    "InspectedModel",
    "ModelPackageError",
    "ModelSchema",
    "Package",
    "PushedPackage",
    "UnpackLimits",
    "build_openapi",
    "build_package",
    "delete_package",
    "ensure_environment",
    "extract_package",
    "fetch_package",
    "generate_openapi_schema",
    "has_package",
    "inspect_model_dir",
    "iter_model_files",
    "load_cog_config",
    "push_model_dir",
    "push_package_file",
    "versions_bucket",
    "write_package",
]
