"""Differential test: every predictor of a corpus runs through Cog's own server and through Cogwheel.

Cog side: `python -m cog.server.http` (coglet, from the pinned wheels) in a copy of the model directory with
`.cog/openapi_schema.json` written as `cog build` would (our schema generator is a port of Cog's, diffed
against it), started once per predictor; every input of the predictor is POSTed to `/predictions`.

Cogwheel side: what a prediction goes through between the gateway and the worker: the gateway's input
validation (`services/gateway/validation.py`), the runner's file-input resolution (`services/runner/inputs.py`)
and the runner's worker (`WorkerSupervisor`, the real worker process).

Status (`invalid` for a refused request), output (files compared by content) and error class must match; the
only differences allowed are the ones in `DOCUMENTED_DIFFERENCES` (explained in docs/cog-parity.md).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.infra import free_port
from libs.modelpkg import load_cog_config
from libs.modelpkg.schema import generate_openapi_schema
from services.gateway.validation import validate_input
from services.runner.adapters.protocol import FILE_KEY
from services.runner.adapters.supervisor import WorkerSetupError, WorkerSupervisor
from services.runner.inputs import FileInputLimits, FileInputResolver, InputError

ROOT = Path(__file__).resolve().parents[2]
PREDICTORS = ROOT / "tests" / "fixtures" / "predictors"
PARITY = ROOT / "tests" / "fixtures" / "parity"


def data_uri(text: str, mime: str = "text/plain") -> str:
    return f"data:{mime};base64,{base64.b64encode(text.encode()).decode()}"


@dataclass(frozen=True)
class Predictor:
    name: str
    directory: Path
    inputs: list[dict[str, Any]]
    weights: str | None = None


def without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != name}


# Every input of `parity/none_defaults` (each type with `default=None`, no `Optional`) and of
# `parity/required_types` (each type without a default), given.
NONE_DEFAULTS = {
    "text": "t", "count": 2, "ratio": 0.5, "flag": True, "words": ["w"], "numbers": [1, 2], "doc": data_uri("doc"),
    "docs": [data_uri("d1")], "attachment": data_uri("att"), "api_key": "k", "bare_text": "b", "bare_key": "bk",
}
REQUIRED_TYPES = {
    "text": "t", "count": 2, "ratio": 0.5, "flag": False, "words": ["w"], "numbers": [1], "doc": data_uri("doc"),
    "docs": [data_uri("d1"), data_uri("d2")], "attachment": data_uri("att"), "api_key": "k",
}

# Inputs are chosen to reach every branch Cog's server distinguishes: defaults, coercions, constraint and
# type violations, missing required inputs, unknown keys, nulls, files, exceptions.
CORPUS = [
    Predictor("inputs", PARITY / "inputs", [
        {"text": "t", "count": 1, "doc": data_uri("document")},
        {"text": "t", "count": 10, "plain_float": 2, "plain_bool": False, "word": "abcde", "ratio": 1,
         "mode": "slow", "size": 256, "tags": [], "numbers": [3, 4], "maybe_int": 7, "maybe_str": "s",
         "maybe_float": 0.5, "maybe_bool": True, "maybe_list": ["x"], "api_key": "key", "token": "given",
         "maybe_secret": "ms", "doc": data_uri("d1"), "maybe_doc": data_uri("d2"),
         "docs": [data_uri("d3"), data_uri("d4")], "attachment": data_uri("attached")},
        {"text": "t", "count": 1},  # doc: Path = Input(default=None) is required, in Cog's schema as here
        {"count": 1, "doc": data_uri("d")},  # required text missing
        {"text": "t", "count": 11, "doc": data_uri("d")},  # le
        {"text": "t", "count": -1, "doc": data_uri("d")},  # ge
        {"text": "t", "count": "3", "doc": data_uri("d")},  # a string for an int
        {"text": "t", "count": 1.0, "doc": data_uri("d")},  # an integral float for an int
        {"text": "t", "count": 1.5, "doc": data_uri("d")},
        {"text": "t", "count": 1, "word": "ABC", "doc": data_uri("d")},  # regex
        {"text": "t", "count": 1, "word": "abcdef", "doc": data_uri("d")},  # max_length
        {"text": "t", "count": 1, "word": "", "doc": data_uri("d")},  # min_length
        {"text": "t", "count": 1, "mode": "medium", "doc": data_uri("d")},  # choices
        {"text": "t", "count": 1, "size": 300, "doc": data_uri("d")},
        {"text": "t", "count": 1, "ratio": 1.5, "doc": data_uri("d")},
        {"text": "t", "count": 1, "maybe_float": -1.0, "doc": data_uri("d")},
        {"text": "t", "count": 1, "tags": "not a list", "doc": data_uri("d")},
        {"text": "t", "count": 1, "numbers": ["x"], "doc": data_uri("d")},
        {"text": "t", "count": 1, "plain_bool": "yes", "doc": data_uri("d")},
        {"text": 5, "count": 1, "doc": data_uri("d")},
        {"text": "t", "count": 1, "unknown": 1, "doc": data_uri("d")},
        {"text": "t", "count": 1, "maybe_int": None, "api_key": None, "doc": data_uri("d")},
    ]),
    # All given, nothing given, then each one left out in turn (only a Secret may be: the others are required
    # in Cog's schema), then explicit nulls.
    Predictor("none_defaults", PARITY / "none_defaults", [
        NONE_DEFAULTS, {}, *(without(NONE_DEFAULTS, name) for name in NONE_DEFAULTS),
        {**NONE_DEFAULTS, "count": None}, {**NONE_DEFAULTS, "api_key": None},
    ]),
    Predictor("required_types", PARITY / "required_types", [
        REQUIRED_TYPES, *(without(REQUIRED_TYPES, name) for name in REQUIRED_TYPES),
        {**REQUIRED_TYPES, "numbers": [0]},  # ge=1 on a list
        {**REQUIRED_TYPES, "docs": []}, {**REQUIRED_TYPES, "ratio": 1}, {**REQUIRED_TYPES, "flag": "no"},
    ]),
    Predictor("failures", PARITY / "failures", [
        {}, {"n": 3, "fail_at": 1}, {"n": 3, "fail_at": 0, "kind": "key"},
        {"n": 2, "fail_at": 1, "kind": "exit"}, {"n": 1},  # sys.exit() in predict(), then the next prediction
    ]),
    Predictor("async_setup_fails", PARITY / "async_setup_fails", [{}]),
    Predictor("objects", PARITY / "objects", [{}, {"caption": "two words", "note": "n"}],
              weights="https://example.com/weights.tar"),
    Predictor("async_logs", PARITY / "async_logs", [{}, {"text": "abc"}, {"fail": True}]),
    Predictor("async_tokens", PARITY / "async_tokens", [{}, {"n": 0}, {"n": 21}]),
    Predictor("kitchen_sink", PREDICTORS / "kitchen_sink", [
        {"text": "k", "document": data_uri("doc"), "token": "tok"},
        {"text": "k", "document": data_uri("doc"), "attachments": [data_uri("a1")], "seed": 3, "number": 100},
        {"text": "", "document": data_uri("doc")},
    ]),
    Predictor("sample", PREDICTORS / "sample", [
        {"prompt": "two words", "image": data_uri("i"), "images": [data_uri("j")]},
        {"prompt": "x", "image": data_uri("i"), "images": [], "steps": 51},
        {"prompt": "x"},
    ]),
    Predictor("chatty", PREDICTORS / "chatty", [{}, {"text": "you", "times": 2}, {"times": 0}]),
    Predictor("failing", PREDICTORS / "failing", [{"text": "me"}, {}]),
    Predictor("setup_fails", PREDICTORS / "setup_fails", [{}]),
    Predictor("stream", PREDICTORS / "stream", [{}, {"n": 0}]),
    Predictor("tokens", PREDICTORS / "tokens", [{"n": 2}, {"fail": True}, {"n": -1}]),
    Predictor("async_stream", PREDICTORS / "async_stream", [{"n": 3}]),
    Predictor("file_iter", PREDICTORS / "file_iter", [{"frames": 2}]),
    Predictor("file_list", PREDICTORS / "file_list", [{"name": "listed"}]),
    Predictor("path_output", PREDICTORS / "path_output", [{}], weights="weights-v1"),
]

# (predictor, input index) -> what differs and why; each is explained in docs/cog-parity.md.
DOCUMENTED_DIFFERENCES: dict[tuple[str, int], str] = {
    ("inputs", 20): "an unknown input is refused (422) as Replicate's API does; coglet drops it silently",
    ("inputs", 21): "an explicit null for an optional input means its default here; coglet refuses it (422)",
    ("none_defaults", 15): "an explicit null for a Secret with default=None (nullable in the schema) means its "
                           "default here; coglet refuses it (422)",
    ("required_types", 11): "ge/le and lengths on a list apply to each item here (cog's own check_input); coglet "
                            "checks only the schema, where they sit on the array and are ignored",
    ("failures", 3): "sys.exit() in predict() ends the worker process here (the prediction fails with its exit "
                     "code and a new worker is started); coglet reports SystemExit as the error",
}


@dataclass
class Outcome:
    status: str  # succeeded, failed, canceled, invalid (a refused request), setup_failed
    output: Any = None
    error: str | None = None  # "ExceptionClass: message"
    logs: list[str] = field(default_factory=list)

    def key(self) -> tuple[Any, ...]:
        return (self.status, json.dumps(self.output, sort_keys=True, default=repr), self.error, self.logs)


_COG_PREFIX = re.compile(r"^(?:(?:Async )?[Pp]rediction failed: |Generator iteration error: )+")
_CLASS_AND_MESSAGE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)): (.*)$", re.S)


def cog_error(error: str | None) -> str | None:
    """Cog's ``Prediction failed: Prediction failed: ValueError: msg`` as ``ValueError: msg``."""
    return _COG_PREFIX.sub("", error) if error else None


def cogwheel_error(error: str | None, logs: str | None) -> str | None:
    """Our error is the exception's message (as Replicate shows it); its class is the traceback's last line."""
    if not error:
        return None
    for line in reversed((logs or "").splitlines()):
        match = _CLASS_AND_MESSAGE.match(line)
        if match and match.group(2) == error.splitlines()[0]:
            return f"{match.group(1).rsplit('.', 1)[-1]}: {error}"
    return error


def _file_content(path: str, read: Callable[[str], bytes] | None) -> dict[str, str]:
    return {"file": (read or (lambda p: Path(p).read_bytes()))(path).decode(errors="replace")}


def normalise(value: Any, read: Callable[[str], bytes] | None = None) -> Any:
    """Files as their content: Cog inlines them as `data:` URIs, our worker hands over paths that `read` opens
    (inside the model's sandbox, as the runner's uploader does)."""
    if isinstance(value, str) and value.startswith("data:"):
        header, _, payload = value[5:].partition(",")
        raw = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
        return {"file": raw.decode(errors="replace")}
    if isinstance(value, dict):
        if set(value) == {FILE_KEY}:
            return _file_content(value[FILE_KEY], read)
        return {k: normalise(v, read) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, read) for v in value]
    return value


def _log_lines(logs: str | None) -> list[str]:
    return [line for line in (logs or "").splitlines() if line.strip()]


# -- Cog's own server ---------------------------------------------------------------------------------------


async def _schema(directory: Path) -> dict[str, Any]:
    config = load_cog_config(directory)
    return (await generate_openapi_schema(directory, config.predict)).openapi_schema


async def cog_outcomes(predictor: Predictor, schema: dict[str, Any], workdir: Path) -> list[Outcome]:
    shutil.copytree(predictor.directory, workdir, dirs_exist_ok=True)
    (workdir / ".cog").mkdir(exist_ok=True)
    (workdir / ".cog" / "openapi_schema.json").write_text(json.dumps(schema))
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "COG_PREDICT_TYPE_STUB": load_cog_config(predictor.directory).predict,
        # coglet spawns `python` from PATH for its worker.
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "LOG_FORMAT": "console",
        "COG_LOG_LEVEL": "warn",
    }
    if predictor.weights is not None:
        env["COG_WEIGHTS"] = predictor.weights
    log = (workdir / "server.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1", cwd=workdir, env=env,
        stdout=log, stderr=log,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            state = await _wait_for_setup(client, process)
            if state != "READY":
                return [Outcome("setup_failed") for _ in predictor.inputs]
            return [await _cog_predict(client, payload) for payload in predictor.inputs]
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def _wait_for_setup(client: httpx.AsyncClient, process: asyncio.subprocess.Process) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.returncode is not None:
            return "EXITED"
        try:
            status = (await client.get("/health-check")).json().get("status")
        except (httpx.HTTPError, ValueError):
            status = None
        if status in ("READY", "SETUP_FAILED", "DEFUNCT"):
            return str(status)
        await asyncio.sleep(0.1)
    raise TimeoutError("cog server did not finish setup in 120 s")


async def _cog_predict(client: httpx.AsyncClient, payload: dict[str, Any]) -> Outcome:
    for _ in range(100):
        response = await client.post("/predictions", json={"input": payload})
        # coglet frees its slot only after answering: a request right behind the last one may find it busy.
        if response.status_code != 409:
            break
        await asyncio.sleep(0.02)
    if response.status_code == 422:
        return Outcome("invalid")
    body = response.json()
    status = body.get("status")
    if status == "succeeded":
        return Outcome("succeeded", normalise(body.get("output")), logs=_log_lines(body.get("logs")))
    return Outcome(str(status), error=cog_error(body.get("error")))


# -- Cogwheel: gateway validation, runner file inputs, runner worker ----------------------------------------


async def cogwheel_outcomes(predictor: Predictor, schema: dict[str, Any], workdir: Path) -> list[Outcome]:
    supervisor = WorkerSupervisor(predictor.directory, load_cog_config(predictor.directory).predict,
                                  weights=predictor.weights)
    resolver = FileInputResolver(None, FileInputLimits())
    try:
        try:
            await supervisor.start()
        except WorkerSetupError:
            return [Outcome("setup_failed") for _ in predictor.inputs]
        outcomes = []
        for n, payload in enumerate(predictor.inputs):
            if validate_input(schema, payload, cache_key=f"parity-{predictor.name}"):
                outcomes.append(Outcome("invalid"))
                continue
            try:
                resolved = await resolver.resolve(payload, supervisor.file_inputs, account="parity",
                                                  workdir=supervisor.prediction_dir(f"parity-{n}") or workdir / str(n))
            except InputError as exc:
                outcomes.append(Outcome("failed", error=f"InputError: {exc}"))
                continue
            result = await supervisor.predict(f"parity-{n}", resolved)
            if result.status == "succeeded":
                files = supervisor.output_files
                read = files.read_bytes if files is not None else None
                outcomes.append(Outcome("succeeded", normalise(result.output, read), logs=_log_lines(result.logs)))
            else:
                outcomes.append(Outcome(result.status, error=cogwheel_error(result.error, result.logs)))
        return outcomes
    finally:
        await supervisor.stop()


# -- the comparison -----------------------------------------------------------------------------------------


@dataclass
class Difference:
    predictor: str
    index: int
    payload: dict[str, Any]
    cog: Outcome
    cogwheel: Outcome

    def __str__(self) -> str:
        return (f"{self.predictor}[{self.index}] input={json.dumps(self.payload)[:200]}\n"
                f"    cog:      {self.cog}\n    cogwheel: {self.cogwheel}")


async def compare(predictor: Predictor, workdir: Path) -> list[Difference]:
    schema = await _schema(predictor.directory)
    cog = await cog_outcomes(predictor, schema, workdir / "cog")
    ours = await cogwheel_outcomes(predictor, schema, workdir / "cogwheel")
    return [
        Difference(predictor.name, n, payload, theirs, mine)
        for n, (payload, theirs, mine) in enumerate(zip(predictor.inputs, cog, ours, strict=True))
        if theirs.key() != mine.key()
    ]


def _batches(items: list[Predictor], size: int) -> Iterator[list[Predictor]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@pytest.fixture(scope="module")
async def differences(tmp_path_factory: pytest.TempPathFactory) -> list[Difference]:
    found: list[Difference] = []
    # A few predictors at a time: each is one coglet server (two processes) and one worker.
    for batch in _batches(CORPUS, 3):
        results = await asyncio.gather(*(compare(p, tmp_path_factory.mktemp(p.name)) for p in batch))
        found += [difference for result in results for difference in result]
    return found


async def test_cogwheel_matches_cog_on_the_corpus(differences: list[Difference]) -> None:
    unexplained = [d for d in differences if (d.predictor, d.index) not in DOCUMENTED_DIFFERENCES]
    assert not unexplained, "differences from Cog:\n" + "\n".join(map(str, unexplained))


async def test_documented_differences_still_differ(differences: list[Difference]) -> None:
    """A documented difference that no longer shows up is stale: remove it from the list and the docs."""
    seen = {(d.predictor, d.index) for d in differences}
    assert set(DOCUMENTED_DIFFERENCES) <= seen, set(DOCUMENTED_DIFFERENCES) - seen
