"""Model directories as content-addressed packages: cog.yaml, OpenAPI schema, object-store transfer."""

from libs.modelpkg.config import CogConfig, load_cog_config
from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.openapi import build_openapi
from libs.modelpkg.package import Package, build_package, extract_package, iter_model_files
from libs.modelpkg.schema import ModelSchema, generate_openapi_schema
from libs.modelpkg.store import VERSIONS_BUCKET, PushedPackage, fetch_package, push_model_dir, versions_bucket

__all__ = [
    "VERSIONS_BUCKET",
    "CogConfig",
    "ModelPackageError",
    "ModelSchema",
    "Package",
    "PushedPackage",
    "build_openapi",
    "build_package",
    "extract_package",
    "fetch_package",
    "generate_openapi_schema",
    "iter_model_files",
    "load_cog_config",
    "push_model_dir",
    "versions_bucket",
]
