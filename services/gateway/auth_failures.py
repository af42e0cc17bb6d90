"""Throttling failed authentications per client address, so tokens cannot be guessed at full speed.

After `limit` failures within `window` seconds an address is answered 429 (with `Retry-After`) before its
token is even looked up, until the oldest failure leaves the window. Successful authentications neither count
nor are refused while the address is not throttled. Kept in the gateway process, like the per-token limits.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_TRACKED_ADDRESSES = 100_000


class FailedAuthThrottle:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.window > 0

    def retry_after(self, address: str) -> int:
        """Whole seconds until ``address`` may try again; 0 when it may now."""
        if not self.enabled:
            return 0
        failures = self._failures.get(address)
        if failures is None:
            return 0
        now = self._clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return 0
        if len(failures) < self.limit:
            return 0
        return max(1, math.ceil(failures[-self.limit] + self.window - now))

    def record_failure(self, address: str) -> None:
        if not self.enabled:
            return
        failures = self._failures.setdefault(address, deque(maxlen=self.limit))
        self._failures.move_to_end(address)
        failures.append(self._clock())
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)
