"""`Prefer: wait` counts from the request's arrival, so a 60 s wait never outlasts the Python client's 60.5 s."""

import time
from types import SimpleNamespace
from typing import Any

from services.gateway.routes.predictions import wait_for_prediction
from services.gateway.waiters import Waiter


class _Waiters:
    def __init__(self) -> None:
        self.waiter = Waiter()

    def register(self, prediction_id: str) -> Waiter:
        return self.waiter

    def unregister(self, prediction_id: str, waiter: Waiter) -> None:
        pass


class _Projection:
    async def get(self, prediction_id: str) -> dict[str, Any]:
        return {"id": prediction_id, "status": "processing"}


def _deps() -> Any:
    return SimpleNamespace(waiters=_Waiters(), projection=_Projection())


async def test_the_budget_already_spent_before_the_handler_is_not_granted_again() -> None:
    began = time.monotonic()
    view = await wait_for_prediction(_deps(), {"id": "p1", "status": "starting"}, 2, since=began - 1.8)
    assert view["status"] == "processing"
    assert time.monotonic() - began < 0.5


async def test_without_an_arrival_time_the_budget_starts_now() -> None:
    began = time.monotonic()
    await wait_for_prediction(_deps(), {"id": "p1", "status": "starting"}, 1)
    assert time.monotonic() - began >= 0.95
