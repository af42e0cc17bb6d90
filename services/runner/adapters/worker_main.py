"""The model worker process: `python -m services.runner.adapters.worker_main <model_dir> <predictor_ref>`.

Protocol lines travel over private duplicates of stdin/stdout; fd 1 is then pointed at stderr, so
anything user code writes (even from C) can never corrupt the control channel.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import os
import queue
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

from services.runner.adapters import protocol as p
from services.runner.adapters.loaded_predictor import LoadedPredictor

try:
    from cog import CancelationException
except ImportError:  # pragma: no cover - cog is a runtime dependency of every model
    CancelationException = KeyboardInterrupt  # type: ignore[assignment,misc]


class Channel:
    """Thread-safe writer of protocol messages."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: p.Message) -> None:
        line = p.encode(message)
        with self._lock:
            self._out.write(line)
            self._out.flush()


class State:
    """What the signal handler and the control reader need to know about the running prediction."""

    def __init__(self) -> None:
        self.current_id: str | None = None
        self.in_user_code = False
        self.cancel_requested = False
        # Cancels can overtake the request they target: the control reader sees them first.
        self.canceled_ids: set[str] = set()
        self.task: asyncio.Task[Any] | None = None


class LogStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr and turns each written line into a Log message."""

    def __init__(self, channel: Channel, state: State, fd: int) -> None:
        self._channel, self._state, self._fd = channel, state, fd
        self._buffer = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            if "\n" not in self._buffer:
                return len(text)
            complete, _, self._buffer = self._buffer.rpartition("\n")
        self._channel.send(p.Log(id=self._state.current_id, text=complete + "\n"))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            pending, self._buffer = self._buffer, ""
        if pending:
            self._channel.send(p.Log(id=self._state.current_id, text=pending))


def _run(predictor: LoadedPredictor, req: p.PredictRequest, kwargs: dict[str, Any], temps: list[Any],
         channel: Channel, state: State, loop: asyncio.AbstractEventLoop) -> p.Done:
    started = time.perf_counter()
    try:
        state.in_user_code = True
        if req.id in state.canceled_ids:
            raise CancelationException()
        if predictor.is_async:
            state.task = loop.create_task(_run_async(predictor, req.id, kwargs, channel))
            loop.run_until_complete(state.task)
        else:
            result = predictor.fn(**kwargs)
            if inspect.isgenerator(result):
                for item in result:
                    channel.send(p.Output(id=req.id, value=predictor.encode(item, item=True), item=True))
            else:
                channel.send(p.Output(id=req.id, value=predictor.encode(result)))
    finally:
        state.in_user_code = False
        state.task = None
        for path in temps:
            _unlink_quietly(path)
    return p.Done(id=req.id, status="succeeded", predict_time=time.perf_counter() - started)


async def _run_async(predictor: LoadedPredictor, pid: str, kwargs: dict[str, Any], channel: Channel) -> None:
    if inspect.isasyncgenfunction(predictor.fn):
        async for item in predictor.fn(**kwargs):
            channel.send(p.Output(id=pid, value=predictor.encode(item, item=True), item=True))
    else:
        result = await predictor.fn(**kwargs)
        channel.send(p.Output(id=pid, value=predictor.encode(result)))


def _predict(predictor: LoadedPredictor, req: p.PredictRequest, channel: Channel, state: State,
             loop: asyncio.AbstractEventLoop) -> None:
    state.current_id, state.cancel_requested = req.id, False
    started = time.perf_counter()
    if req.id in state.canceled_ids:
        state.canceled_ids.discard(req.id)
        state.current_id = None
        channel.send(p.Done(id=req.id, status="canceled"))
        return
    try:
        kwargs, temps = predictor.prepare_input(req.input)
    except ValueError as exc:
        state.current_id = None
        channel.send(p.Done(id=req.id, status="failed", error=str(exc)))
        return
    try:
        done = _run(predictor, req, kwargs, temps, channel, state, loop)
    except (CancelationException, asyncio.CancelledError):
        done = p.Done(id=req.id, status="canceled", predict_time=time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything; it becomes a failed prediction
        traceback.print_exc()
        done = p.Done(id=req.id, status="failed", error=str(exc) or type(exc).__name__,
                      predict_time=time.perf_counter() - started)
    sys.stdout.flush()
    sys.stderr.flush()
    state.current_id = None
    state.canceled_ids.discard(req.id)
    channel.send(done)


def _read_control(source: IO[bytes], requests: queue.Queue[p.Message | None], state: State,
                  loop: asyncio.AbstractEventLoop) -> None:
    for line in source:
        message = p.decode(line)
        if isinstance(message, p.Cancel):
            _cancel(message.id, state, loop)
        else:
            requests.put(message)
    requests.put(None)


def _cancel(pid: str, state: State, loop: asyncio.AbstractEventLoop) -> None:
    if state.current_id != pid:
        if len(state.canceled_ids) < 1024:
            state.canceled_ids.add(pid)
        return
    if not state.in_user_code:
        state.canceled_ids.add(pid)
        return
    state.cancel_requested = True
    task = state.task
    if task is not None:
        loop.call_soon_threadsafe(task.cancel)
    else:
        # A signal interrupts blocking sleeps and I/O in the main thread, which an async exception cannot.
        os.kill(os.getpid(), signal.SIGUSR1)


def _on_cancel_signal(state: State) -> Any:
    def handler(signum: int, frame: Any) -> None:
        if state.in_user_code and state.cancel_requested and state.task is None:
            state.cancel_requested = False
            raise CancelationException()

    return handler


def _unlink_quietly(path: Any) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _setup(predictor_ref: str, weights: str | None, loop: asyncio.AbstractEventLoop) -> LoadedPredictor:
    predictor = LoadedPredictor(predictor_ref)
    outcome = predictor.setup_call(weights)
    if inspect.isawaitable(outcome):
        loop.run_until_complete(outcome)
    return predictor


def main(argv: list[str]) -> int:
    model_dir, predictor_ref = argv[1], argv[2]
    control_in = os.fdopen(os.dup(0), "rb")
    channel = Channel(os.fdopen(os.dup(1), "wb"))
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    state = State()
    sys.stdout = LogStream(channel, state, 1)
    sys.stderr = LogStream(channel, state, 2)
    os.chdir(model_dir)
    sys.path.insert(0, os.getcwd())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    first = p.decode(control_in.readline() or b'{"type":"Shutdown"}')
    if not isinstance(first, p.Setup):
        return 0
    started = time.perf_counter()
    try:
        predictor = _setup(predictor_ref, first.weights, loop)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then the process ends
        traceback.print_exc()
        sys.stderr.flush()
        channel.send(p.SetupFailed(error=f"{type(exc).__name__}: {exc}"))
        return 1
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGUSR1, _on_cancel_signal(state))
    requests: queue.Queue[p.Message | None] = queue.Queue()
    threading.Thread(target=_read_control, args=(control_in, requests, state, loop), daemon=True).start()
    channel.send(p.Ready(setup_time=time.perf_counter() - started))
    while isinstance(message := requests.get(), p.PredictRequest):
        _predict(predictor, message, channel, state, loop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
