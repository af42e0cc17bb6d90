"""A user's Cog predictor loaded inside the worker process: inputs in, JSON-ready outputs out."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import functools
import importlib.util
import inspect
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from services.runner.adapters.protocol import FILE_KEY


class LoadedPredictor:
    """Imports ``predict.py:Predictor`` (or a plain function) and describes it with cog's own inspector."""

    def __init__(self, predictor_ref: str) -> None:
        from cog import _inspector

        module_path, _, attr = predictor_ref.partition(":")
        module_name = os.path.basename(module_path).removesuffix(".py")
        spec = importlib.util.spec_from_file_location(module_name, module_path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load module from {module_path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        attr = attr or ("Runner" if hasattr(module, "Runner") else "Predictor")
        target = getattr(module, attr, None)
        if target is None:
            raise ImportError(f"{module_path} defines no {attr!r}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self.info = _inspector.create_predictor(module_name, attr)
        self.instance: Any = target() if inspect.isclass(target) else None
        self.fn: Callable[..., Any] = target if self.instance is None else self._method(target)
        self._inspector = _inspector

    def _method(self, cls: type) -> Callable[..., Any]:
        from cog.predictor import _user_method_owner

        name = "run" if _user_method_owner(cls, "run") is not None else "predict"
        return getattr(self.instance, name)  # type: ignore[no-any-return]

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn) or inspect.isasyncgenfunction(self.fn)

    def setup_call(self, weights: str | None) -> Any:
        """Call setup() the way coglet does: ``weights`` only if the signature names it."""
        setup = getattr(self.instance, "setup", None)
        if setup is None:
            return None
        if "weights" in inspect.signature(setup).parameters:
            return setup(weights=weights if weights is not None else os.environ.get("COG_WEIGHTS"))
        return setup()

    @property
    def file_inputs(self) -> list[str]:
        """Inputs typed Path or File (alone or in a list): their URLs are fetched before predict() runs."""
        from cog import _adt as adt

        kinds = (adt.PrimitiveType.PATH, adt.PrimitiveType.FILE)
        return [name for name, field in self.info.inputs.items() if field.type.primitive in kinds]

    def prepare_input(self, raw: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        """The keyword arguments predict() gets for ``raw``, as Cog's server builds them.

        Cog's own input check (``check_input``) checks constraints, refuses missing required inputs and
        coerces files, secrets and strings. Like coglet, an input that is not given gets the predictor's
        Python default (``Input(default=...)`` unwrapped, unconverted: ``Secret = Input(default=None)``
        arrives as None), and numbers arrive as given (coglet hands an integral float for an ``int``, or an
        int for a ``float``, to predict() unchanged).

        File inputs normally arrive as local paths (the runner downloaded them); a URL that did not is
        downloaded here the way cog does it. Returns the keyword arguments and the temporary paths to remove.
        """
        from cog import _adt as adt
        from cog.types import URLPath

        given = {name: value for name, value in raw.items() if not (value is None and name in self._defaults)}
        files: list[Any] = []
        for name, field in self.info.inputs.items():
            if field.type.primitive is adt.PrimitiveType.FILE and name in given:
                given[name] = _open_local(given[name], files)
        # A missing input with a Python default is not checked (Cog does not check defaults at run time).
        checked = {name: field for name, field in self.info.inputs.items()
                   if name in given or name not in self._defaults}
        normalised = self._inspector.check_input(checked, given)
        kwargs: dict[str, Any] = {}
        for name, field in self.info.inputs.items():
            if name not in given:
                kwargs[name] = self._defaults[name] if name in self._defaults else normalised.get(name)
            elif field.type.primitive in (adt.PrimitiveType.INTEGER, adt.PrimitiveType.FLOAT) and _numbers(
                    given[name]):
                kwargs[name] = given[name]
            else:
                kwargs[name] = normalised[name]
        temps: list[Any] = []
        for name, value in kwargs.items():
            if isinstance(value, URLPath):
                kwargs[name] = value.convert()
                temps.append(kwargs[name])
            elif isinstance(value, list) and any(isinstance(v, URLPath) for v in value):
                kwargs[name] = [v.convert() if isinstance(v, URLPath) else v for v in value]
                temps.extend(v for v in kwargs[name] if isinstance(v, PurePath))
        return kwargs, temps + files

    @functools.cached_property
    def _defaults(self) -> dict[str, Any]:
        """Python defaults of predict()'s parameters, ``Input(default=...)`` unwrapped, as coglet passes them.

        ``Input()`` without a default also has ``default=None``; such an input is either optional (None is
        its default) or required, which the schema (and Cog's input check, for a missing one) enforces.
        """
        from cog.input import FieldInfo

        defaults: dict[str, Any] = {}
        for name, param in inspect.signature(self.fn).parameters.items():
            if name not in self.info.inputs or param.default is inspect.Parameter.empty:
                continue
            default = param.default.default if isinstance(param.default, FieldInfo) else param.default
            if default is None and not self._optional(name):
                continue
            defaults[name] = default
        return defaults

    def _optional(self, name: str) -> bool:
        """None is a valid value: ``Optional[...]``, or ``Secret = Input(default=None)`` (Cog's one exception)."""
        from cog import _adt as adt

        field = self.info.inputs[name]
        if field.type.repetition in (adt.Repetition.OPTIONAL, adt.Repetition.OPTIONAL_REPEATED):
            return True
        return field.type.primitive is adt.PrimitiveType.SECRET and field.type.repetition is adt.Repetition.REQUIRED

    def encode(self, value: Any, *, item: bool = False) -> Any:
        """JSON-ready form of a whole output or one iterator element; files become file markers."""
        from cog import _adt as adt

        output = self.info.output
        if item or output.kind in (adt.OutputKind.ITERATOR, adt.OutputKind.CONCAT_ITERATOR):
            value = output.type.json_encode(value) if output.type is not None else value
        else:
            value = output.json_encode(value)
        return jsonable(value)


def _numbers(value: Any) -> bool:
    """A JSON number (or a list of them) that coglet would hand to predict() unchanged."""
    items = value if isinstance(value, list) else [value]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


def _open_local(value: Any, opened: list[Any]) -> Any:
    """A local path given for a File input becomes an open file, as cog hands File inputs to predict()."""

    def one(item: Any) -> Any:
        if isinstance(item, str) and item.startswith("/") and os.path.isfile(item):
            handle = open(item, "rb")  # noqa: SIM115 - closed after the prediction
            opened.append(handle)
            return handle
        return item

    return [one(v) for v in value] if isinstance(value, list) else one(value)


def jsonable(value: Any) -> Any:
    """Plain JSON types; a file output becomes ``{FILE_KEY: absolute path}`` for the runner to upload."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (PurePath, os.PathLike)):
        return {FILE_KEY: os.path.abspath(os.fspath(value))}
    if isinstance(value, io.IOBase):
        return {FILE_KEY: _spill(value)}
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    return str(value)


def _spill(stream: io.IOBase) -> str:
    """A file object returned by predict() (cog.File output) is written to a temporary file."""
    name = os.path.basename(str(getattr(stream, "name", "") or "output"))
    directory = tempfile.mkdtemp(prefix="cogwheel-out-")
    path = os.path.join(directory, name or "output")
    data = stream.read()
    with open(path, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    return path
