"""The e2e stack fixtures (`platform` and the knobs a module overrides), shared with `tests/e2e`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "cogwheel_tests_e2e_conftest", Path(__file__).resolve().parents[1] / "e2e" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_e2e = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _e2e
_spec.loader.exec_module(_e2e)

# Every fixture of the e2e conftest (the stack and the knobs a module overrides), under its own name.
globals().update({name: value for name, value in vars(_e2e).items() if hasattr(value, "_fixture_function_marker")})
