"""Output values become plain JSON."""

import dataclasses
import datetime
import enum
import pathlib

from services.runner.adapters.loaded_predictor import jsonable


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
        "p": "/tmp/x.png",
        "e": "red",
        "d": "2024-01-02T03:04:05",
        "box": {"path": "/a", "tags": ["x", "y"]},
        "1": [1],
    }
