"""Parent/child messages survive a JSON-lines round trip."""

import pytest

from services.runner.adapters import protocol as p

MESSAGES: list[p.Message] = [
    p.Setup(weights="https://example.com/w.bin"),
    p.Setup(),
    p.Ready(setup_time=0.5),
    p.SetupFailed(error="RuntimeError: boom"),
    p.PredictRequest(id="abc", input={"text": "héllo", "n": [1, 2.5, None]}),
    p.Log(id=None, text="setup line\n"),
    p.Log(id="abc", text="partial"),
    p.Output(id="abc", value={"nested": ["x"]}),
    p.Output(id="abc", value="tok", item=True),
    p.Done(id="abc", status="failed", error="bad", predict_time=1.25),
    p.Cancel(id="abc"),
    p.Shutdown(),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(message: p.Message) -> None:
    line = p.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert p.decode(line) == message


def test_text_with_newlines_stays_one_line() -> None:
    assert p.encode(p.Log(id="x", text="a\nb\n")).count(b"\n") == 1


@pytest.mark.parametrize("line", [b"not json", b'{"type":"Nope"}', b'{"type":"Done"}', b"[]"])
def test_rejects_garbage(line: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode(line)


def test_values_the_fast_encoder_refuses_still_round_trip() -> None:
    huge = 2**70
    message = p.Output(id="p1", value={"big": huge, "items": [1.5, "x", None]})
    assert p.decode(p.encode(message)) == message
