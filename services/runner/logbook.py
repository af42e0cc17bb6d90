"""A prediction's logs with bounded size: the first lines and the latest lines, a marker line in between."""

from __future__ import annotations

import collections


class LogBook:
    """Keeps up to ``head_bytes`` of the first log text and ``tail_bytes`` of the latest.

    ``add`` returns the part of the text that went into the head: that part is final and may be reported
    as it comes (progress events); whatever comes after the head is full only shows in ``render``.
    """

    def __init__(self, head_bytes: int, tail_bytes: int) -> None:
        self._head_limit, self._tail_limit = max(0, head_bytes), max(0, tail_bytes)
        self._head: list[str] = []
        self._head_size = 0
        self._head_full = False
        self._tail: collections.deque[str] = collections.deque()
        self._tail_size = 0
        self._dropped_lines = 0
        self._dropped_bytes = 0

    @property
    def truncated(self) -> bool:
        return self._dropped_lines > 0

    def add(self, text: str) -> str:
        if not text:
            return ""
        accepted: list[str] = []
        for line in text.splitlines(keepends=True):
            size = len(line.encode())
            if not self._head_full and self._head_size + size <= self._head_limit:
                self._head.append(line)
                self._head_size += size
                accepted.append(line)
                continue
            self._head_full = True
            self._keep_latest(line, size)
        return "".join(accepted)

    def _keep_latest(self, line: str, size: int) -> None:
        self._tail.append(line)
        self._tail_size += size
        while self._tail and self._tail_size > self._tail_limit:
            dropped = self._tail.popleft()
            self._tail_size -= len(dropped.encode())
            self._dropped_lines += 1
            self._dropped_bytes += len(dropped.encode())

    def render(self) -> str:
        head = "".join(self._head)
        tail = "".join(self._tail)
        if not self.truncated:
            return head + tail
        if head and not head.endswith("\n"):
            head += "\n"
        marker = (
            f"... [{self._dropped_lines} log line(s), {self._dropped_bytes} bytes, truncated; "
            "the first and the latest lines are kept] ...\n"
        )
        return head + marker + tail
