"""The model worker process: `python -m services.runner.adapters.worker_main <model_dir> <predictor_ref>`.

Protocol lines travel over private duplicates of stdin/stdout; fd 1 is then pointed at stderr, so
anything user code writes (even from C) can never corrupt the control channel. What reaches fd 1/2 that way
(subprocesses, C libraries) is read by the parent, which files it under the running prediction.

A sync predictor runs in the main thread, one prediction at a time; a cancel raises cog's
``CancelationException`` in it (through SIGUSR1, so blocking sleeps and I/O are interrupted too). An async
predictor runs on one event loop, up to ``concurrency`` predictions at once; a cancel cancels its task
(``asyncio.CancelledError``), as in Cog.
"""

from __future__ import annotations

import asyncio
import contextvars
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

# The prediction the running code belongs to (an async task, or the main thread of a sync predictor).
current_prediction: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_prediction", default=None)

_REMEMBERED_CANCELS = 1024


class Channel:
    """Thread-safe writer of protocol messages."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._lock = threading.Lock()

    def send(self, message: p.Message) -> None:
        line = p.encode(message)
        # A cancel signal must not interrupt a half-written line: it waits until the line is out.
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        try:
            with self._lock:
                self._out.write(line)
                self._out.flush()
        finally:
            if main:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})


class State:
    """What the signal handler, the control reader and the log streams need to know."""

    def __init__(self) -> None:
        self.current_id: str | None = None
        self.in_user_code = False
        self.cancel_requested = False
        # Cancels can overtake the request they target: the control reader sees them first.
        self.canceled_ids: set[str] = set()
        self.running: set[str] = set()

    def owner(self) -> str | None:
        """Whom an output line belongs to: the calling context's prediction, else the only running one."""
        pid = current_prediction.get() or self.current_id
        if pid is None and len(self.running) == 1:
            pid = next(iter(self.running))
        return pid

    def remember_cancel(self, pid: str) -> None:
        if len(self.canceled_ids) < _REMEMBERED_CANCELS:
            self.canceled_ids.add(pid)


class LogStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr and turns each written line into a Log message."""

    def __init__(self, channel: Channel, state: State, fd: int) -> None:
        self._channel, self._state, self._fd = channel, state, fd
        self._buffers: dict[str | None, str] = {}
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, text: str) -> int:
        pid = self._state.owner()
        with self._lock:
            buffered = self._buffers.pop(pid, "") + text
            if "\n" not in buffered:
                self._buffers[pid] = buffered
                return len(text)
            complete, _, rest = buffered.rpartition("\n")
            if rest:
                self._buffers[pid] = rest
        self._channel.send(p.Log(id=pid, text=complete + "\n"))
        return len(text)

    def flush(self, pid: str | None = None) -> None:
        with self._lock:
            pending = self._buffers.pop(pid if pid is not None else self._state.owner(), "")
        if pending:
            self._channel.send(p.Log(id=pid if pid is not None else self._state.owner(), text=pending))


def _flush_logs(pid: str | None = None) -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, LogStream):
            stream.flush(pid)
        else:
            stream.flush()


def _gpu_stats() -> p.Stats | None:
    """CUDA memory of this process, when the model uses torch on a GPU (never initialises CUDA itself)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        if cuda is None or not cuda.is_available() or not cuda.is_initialized():
            return None
        return p.Stats(
            gpu_memory_allocated=int(cuda.memory_allocated()),
            gpu_memory_reserved=int(cuda.memory_reserved()),
            gpu_max_memory_allocated=int(cuda.max_memory_allocated()),
            gpu_device=str(cuda.get_device_name()),
        )
    except Exception:  # noqa: BLE001 - statistics must never fail a prediction
        return None


def _send_stats(channel: Channel) -> None:
    stats = _gpu_stats()
    if stats is not None:
        channel.send(stats)


def _unlink_quietly(path: Any) -> None:
    try:
        if isinstance(path, io.IOBase):
            path.close()
        else:
            os.unlink(path)
    except OSError:
        pass


def _finish(channel: Channel, done: p.Done) -> None:
    """Send Done after a marker on fd 2: the parent files what reached fd 1/2 before it under this prediction."""
    try:
        os.write(2, p.stderr_marker(done.id))
    except OSError:
        pass
    channel.send(done)


def _failure(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


# --- sync predictors: one prediction at a time in the main thread ----------------------------------


def _run_sync(predictor: LoadedPredictor, req: p.PredictRequest, kwargs: dict[str, Any], channel: Channel,
              state: State) -> None:
    try:
        state.in_user_code = True
        if req.id in state.canceled_ids:
            raise CancelationException()
        result = predictor.fn(**kwargs)
        if inspect.isgenerator(result):
            produced = False
            for item in result:
                produced = True
                channel.send(p.Output(id=req.id, value=predictor.encode(item, item=True), item=True))
            if not produced:  # an iterator that yields nothing has the output [], as in Cog
                channel.send(p.Output(id=req.id, value=[]))
        else:
            channel.send(p.Output(id=req.id, value=predictor.encode(result)))
    finally:
        state.in_user_code = False


def _reap_children() -> None:
    """Collect children that ended (the runner kills what a prediction leaves running when it is done).

    Unreaped, each would hold a process slot of the sandbox. A child the model still waits on through
    ``subprocess`` reads as exited with 0 if it is collected here first.
    """
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _predict_sync(predictor: LoadedPredictor, req: p.PredictRequest, channel: Channel, state: State) -> None:
    _reap_children()
    state.current_id, state.cancel_requested = req.id, False
    state.running.add(req.id)
    started = time.perf_counter()
    temps: list[Any] = []
    try:
        if req.id in state.canceled_ids:
            done = p.Done(id=req.id, status="canceled")
        else:
            try:
                kwargs, temps = predictor.prepare_input(req.input)
            except ValueError as exc:
                done = p.Done(id=req.id, status="failed", error=str(exc))
            else:
                try:
                    _run_sync(predictor, req, kwargs, channel, state)
                    done = p.Done(id=req.id, status="succeeded", predict_time=time.perf_counter() - started)
                except CancelationException:
                    done = p.Done(id=req.id, status="canceled", predict_time=time.perf_counter() - started)
                except Exception as exc:  # noqa: BLE001 - user code may raise anything; it fails the prediction
                    traceback.print_exc()
                    done = p.Done(id=req.id, status="failed", error=_failure(exc),
                                  predict_time=time.perf_counter() - started)
    finally:
        for path in temps:
            _unlink_quietly(path)
    _flush_logs(req.id)
    state.current_id = None
    state.running.discard(req.id)
    state.canceled_ids.discard(req.id)
    _send_stats(channel)
    _finish(channel, done)


def _read_control_sync(source: IO[bytes], requests: queue.Queue[p.Message | None], state: State) -> None:
    for line in source:
        message = p.decode(line)
        if isinstance(message, p.Cancel):
            _cancel_sync(message.id, state)
        else:
            requests.put(message)
    requests.put(None)


def _cancel_sync(pid: str, state: State) -> None:
    if state.current_id != pid or not state.in_user_code:
        state.remember_cancel(pid)
        return
    state.cancel_requested = True
    # A signal interrupts blocking sleeps and I/O in the main thread, which an async exception cannot.
    os.kill(os.getpid(), signal.SIGUSR1)


def _on_cancel_signal(state: State) -> Any:
    def handler(signum: int, frame: Any) -> None:
        if state.in_user_code and state.cancel_requested:
            state.cancel_requested = False
            raise CancelationException()

    return handler


def _serve_sync(predictor: LoadedPredictor, control_in: IO[bytes], channel: Channel, state: State) -> None:
    signal.signal(signal.SIGUSR1, _on_cancel_signal(state))
    requests: queue.Queue[p.Message | None] = queue.Queue()
    threading.Thread(target=_read_control_sync, args=(control_in, requests, state), daemon=True).start()
    while isinstance(message := requests.get(), p.PredictRequest):
        _predict_sync(predictor, message, channel, state)


# --- async predictors: up to `slots` predictions at once on one event loop ------------------------------


async def _predict_async(predictor: LoadedPredictor, req: p.PredictRequest, channel: Channel, state: State) -> None:
    _reap_children()
    current_prediction.set(req.id)
    started = time.perf_counter()
    temps: list[Any] = []
    try:
        kwargs, temps = predictor.prepare_input(req.input)
    except ValueError as exc:
        done = p.Done(id=req.id, status="failed", error=str(exc))
    else:
        try:
            if inspect.isasyncgenfunction(predictor.fn):
                produced = False
                async for item in predictor.fn(**kwargs):
                    produced = True
                    channel.send(p.Output(id=req.id, value=predictor.encode(item, item=True), item=True))
                if not produced:
                    channel.send(p.Output(id=req.id, value=[]))
            else:
                result = await predictor.fn(**kwargs)
                channel.send(p.Output(id=req.id, value=predictor.encode(result)))
            done = p.Done(id=req.id, status="succeeded", predict_time=time.perf_counter() - started)
        except (asyncio.CancelledError, CancelationException):
            done = p.Done(id=req.id, status="canceled", predict_time=time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - user code may raise anything; it fails the prediction
            traceback.print_exc()
            done = p.Done(id=req.id, status="failed", error=_failure(exc),
                          predict_time=time.perf_counter() - started)
    finally:
        for path in temps:
            _unlink_quietly(path)
    _flush_logs(req.id)
    state.running.discard(req.id)
    _send_stats(channel)
    _finish(channel, done)


def _serve_async(predictor: LoadedPredictor, control_in: IO[bytes], channel: Channel, state: State,
                 loop: asyncio.AbstractEventLoop) -> None:
    tasks: dict[str, asyncio.Task[None]] = {}
    finished = asyncio.Event()

    def on_message(message: p.Message | None) -> None:
        if isinstance(message, p.PredictRequest):
            if message.id in state.canceled_ids:
                state.canceled_ids.discard(message.id)
                channel.send(p.Done(id=message.id, status="canceled"))
                return
            state.running.add(message.id)
            task = loop.create_task(_predict_async(predictor, message, channel, state), name=message.id)
            tasks[message.id] = task
            task.add_done_callback(lambda _: tasks.pop(message.id, None))
        elif isinstance(message, p.Cancel):
            running = tasks.get(message.id)
            if running is None:
                state.remember_cancel(message.id)
            else:
                running.cancel()
        else:
            finished.set()

    def read_control() -> None:
        for line in control_in:
            loop.call_soon_threadsafe(on_message, p.decode(line))
        loop.call_soon_threadsafe(on_message, None)

    async def serve() -> None:
        threading.Thread(target=read_control, daemon=True).start()
        await finished.wait()
        if tasks:
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    loop.run_until_complete(serve())


# --- start-up ------------------------------------------------------------------------------------------


def _setup(predictor_ref: str, setup: p.Setup, loop: asyncio.AbstractEventLoop) -> LoadedPredictor:
    predictor = LoadedPredictor(predictor_ref)
    if setup.concurrency > 1 and not predictor.is_async:
        raise ValueError(f"concurrency.max is {setup.concurrency}, which needs an async predict() (as in Cog)")
    outcome = predictor.setup_call(setup.weights)
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
        predictor = _setup(predictor_ref, first, loop)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, then the process ends
        traceback.print_exc()
        _flush_logs()
        channel.send(p.SetupFailed(error=f"{type(exc).__name__}: {exc}"))
        return 1
    _flush_logs()
    slots = max(1, first.concurrency) if predictor.is_async else 1
    channel.send(p.Ready(setup_time=time.perf_counter() - started, file_inputs=predictor.file_inputs, slots=slots))
    _send_stats(channel)
    if predictor.is_async:
        _serve_async(predictor, control_in, channel, state, loop)
    else:
        _serve_sync(predictor, control_in, channel, state)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
