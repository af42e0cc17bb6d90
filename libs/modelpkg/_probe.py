"""Child-process script: import a predictor and print its Cog input/output schema components as JSON.

Runs as a plain script (no repo imports) so user code is only ever imported in a throwaway process.
Usage: python _probe.py <model_dir> <predict_ref> [<train_ref>]
"""

import importlib.util
import inspect
import json
import os
import sys
import traceback
import warnings
from typing import Any


def _load_module(ref: str) -> tuple[Any, str]:
    module_path, _, attr = ref.partition(":")
    module_name = os.path.basename(module_path).removesuffix(".py")
    spec = importlib.util.spec_from_file_location(module_name, module_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load module from {module_path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    if not attr:
        attr = "Runner" if hasattr(module, "Runner") else "Predictor"
    if not hasattr(module, attr):
        raise ImportError(f"{module_path} defines no {attr!r}")
    return module, attr


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    return value


def _raw_field_infos(fn: Any) -> dict[str, Any]:
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()}


def _input_property(field: Any, raw: Any, enums: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    from cog import _adt as adt

    optional = field.type.repetition in (adt.Repetition.OPTIONAL, adt.Repetition.OPTIONAL_REPEATED)
    is_secret = field.type.primitive is adt.PrimitiveType.SECRET
    prop: dict[str, Any] = {"x-order": field.order}
    if field.choices is not None:
        enums[field.name] = {
            "title": field.name,
            "type": field.type.primitive.json_type()["type"],
            "enum": _plain(field.choices),
            "description": "An enumeration.",
        }
        prop["allOf"] = [{"$ref": f"#/components/schemas/{field.name}"}]
    else:
        prop["title"] = field.name.replace("_", " ").title()
        prop.update(field.type.json_type())
    if field.description is not None:
        prop["description"] = field.description
    required = False
    if field.default is not None:
        prop["default"] = _plain(field.default)
    elif optional or is_secret and raw is not inspect.Parameter.empty:
        prop["nullable"] = True
        prop["default"] = None
    else:
        required = True
    for attr, key in (("ge", "minimum"), ("le", "maximum"), ("min_length", "minLength"),
                      ("max_length", "maxLength"), ("regex", "pattern")):
        value = getattr(field, attr)
        if value is not None:
            prop[key] = _plain(value)
    if field.deprecated:
        prop["deprecated"] = True
    accept = getattr(raw, "accept", None)
    if accept:
        prop["x-cog-accept"] = accept
    return prop, required


def _components(module: Any, attr: str, method: str) -> dict[str, Any]:
    from cog import _inspector

    target = getattr(module, attr)
    if inspect.isclass(target) and method == "train":
        fn = target.train  # type: ignore[attr-defined]  # isclass() narrows to a bare type; cog found train on it
        info = _inspector._create_predictor_info(module.__name__, attr, fn, "train", True)
    else:
        info = _inspector.create_predictor(module.__name__, attr)
        fn = target if inspect.isfunction(target) else getattr(target, "run", None)
        if fn is None or _inspector._user_method_owner(target, "run") is None:
            fn = getattr(target, "predict", target)
    raws = _raw_field_infos(fn)
    enums: dict[str, Any] = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, field in sorted(info.inputs.items(), key=lambda kv: kv[1].order):
        props[name], is_required = _input_property(field, raws.get(name), enums)
        if is_required:
            required.append(name)
    schema: dict[str, Any] = {"title": "Input", "type": "object", "properties": props}
    if required:
        schema["required"] = required
    return {"input": schema, "output": info.output.json_type(), "enums": enums}


def main() -> int:
    model_dir, predict_ref = sys.argv[1], sys.argv[2]
    train_ref = sys.argv[3] if len(sys.argv) > 3 else None
    result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever user code prints must not corrupt the JSON answer
    os.chdir(model_dir)
    sys.path.insert(0, os.getcwd())
    warnings.simplefilter("ignore")
    try:
        from cog import __version__ as cog_version

        answer: dict[str, Any] = {"cog_version": cog_version}
        module, attr = _load_module(predict_ref)
        answer["predict"] = _components(module, attr, "predict")
        if train_ref:
            module, attr = _load_module(train_ref)
            answer["train"] = _components(module, attr, "train")
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as text
        traceback.print_exc()
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(result_fd, "w") as out:
        json.dump(answer, out)
    return 1 if "error" in answer else 0


if __name__ == "__main__":
    sys.exit(main())
