"""Cancel requests to runners: a core NATS broadcast, since only the runner holding the job can act on it."""

import json

from libs.bus.nats import Bus
from libs.bus.subjects import RUNNER_CANCEL

CANCEL_SUBJECT = RUNNER_CANCEL


class NatsRunnerControl:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def request_cancel(self, prediction_id: str) -> None:
        await self._bus.nc.publish(CANCEL_SUBJECT, json.dumps({"prediction_id": prediction_id}).encode())
