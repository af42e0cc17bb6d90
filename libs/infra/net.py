"""Loopback port helpers shared by the launchers and the process supervisor."""

import socket
import time
from collections.abc import Callable

__all__ = ["free_port", "port_in_use", "wait_for_port"]

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when binding ``host:port`` fails, i.e. another process listens on it.

    The check binds the way our servers do (uvicorn, grpc, nats-server and PostgreSQL all set SO_REUSEADDR), so
    connections of a stack stopped a moment ago, lingering in TIME_WAIT, do not read as a busy port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    *,
    host: str = LOOPBACK,
    timeout: float = 30.0,
    alive: Callable[[], bool] = lambda: True,
) -> bool:
    """Poll until ``host:port`` accepts a connection.

    Returns False as soon as ``alive()`` turns False (the server process died) or the timeout passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        if _accepts(host, port):
            return True
        time.sleep(0.05)
    return False
