"""Output values become plain JSON; files become markers the runner uploads."""

import dataclasses
import datetime
import enum
import pathlib

from services.runner.adapters.loaded_predictor import jsonable
from services.runner.adapters.protocol import FILE_KEY


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Box:
    path: pathlib.Path
    tags: tuple[str, ...]


def test_jsonable_converts_common_types() -> None:
    value = {
        "p": pathlib.Path("/tmp/x.png"),
        "e": Color.RED,
        "d": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "box": Box(pathlib.Path("/a"), ("x", "y")),
        1: {1, },
    }
    assert jsonable(value) == {
        "p": {FILE_KEY: "/tmp/x.png"},
        "e": "red",
        "d": "2024-01-02T03:04:05",
        "box": {"path": {FILE_KEY: "/a"}, "tags": ["x", "y"]},
        "1": [1],
    }


def test_file_object_output_is_spilled_to_a_file(tmp_path: pathlib.Path) -> None:
    import io

    marker = jsonable(io.BytesIO(b"payload"))
    assert pathlib.Path(marker[FILE_KEY]).read_bytes() == b"payload"
