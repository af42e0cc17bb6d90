"""The model sandbox: every piece of model code (prediction workers, push inspection) runs inside it."""

from libs.sandbox.bwrap import (
    CODE_DIR,
    INPUTS_DIR,
    MODEL_DIR,
    TMP_DIR,
    Launch,
    Sandbox,
    SandboxSettings,
    SandboxUnavailable,
    sandbox_python,
)
from libs.sandbox.cgroups import Cgroup, CgroupError, Limits
from libs.sandbox.files import ForbiddenPath, Mount, SandboxFiles

__all__ = [
    "CODE_DIR",
    "INPUTS_DIR",
    "MODEL_DIR",
    "TMP_DIR",
    "Cgroup",
    "CgroupError",
    "ForbiddenPath",
    "Launch",
    "Limits",
    "Mount",
    "Sandbox",
    "SandboxFiles",
    "SandboxSettings",
    "SandboxUnavailable",
    "sandbox_python",
]
