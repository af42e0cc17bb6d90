"""OpenTelemetry counters of webhook attempts, exported over OTLP/HTTP when an endpoint is configured."""

from __future__ import annotations

import logging

from opentelemetry import metrics
from opentelemetry.metrics import Meter

log = logging.getLogger(__name__)

METRICS_PATH = "/v1/metrics"


class DeliveryMetrics:
    def __init__(self, meter: Meter | None = None) -> None:
        meter = meter or metrics.get_meter("cogwheel.webhook_dispatcher")
        self._attempts = meter.create_counter(
            "cogwheel.webhook.attempts", unit="{attempt}", description="Webhook POSTs made, by event and outcome"
        )
        self._failed = meter.create_counter(
            "cogwheel.webhook.failed_deliveries", unit="{delivery}", description="Webhooks given up on"
        )
        self._latency = meter.create_histogram(
            "cogwheel.webhook.attempt.duration", unit="ms", description="Time to the receiver's answer"
        )

    def attempt(self, webhook_event: str, status_code: int | None, outcome: str, latency_ms: float) -> None:
        attributes: dict[str, str | int] = {
            "webhook_event": webhook_event,
            "outcome": outcome,
            "status_code": status_code if status_code is not None else 0,
        }
        self._attempts.add(1, attributes)
        self._latency.record(latency_ms, {"webhook_event": webhook_event})
        if outcome == "failed":
            self._failed.add(1, {"webhook_event": webhook_event})


def setup_metrics(service_name: str, otlp_endpoint: str | None) -> None:
    """Install a meter provider that exports to `otlp_endpoint`; without one the counters cost nothing."""
    if not otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    base = otlp_endpoint.rstrip("/")
    url = base if base.endswith(METRICS_PATH) else base + METRICS_PATH
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=url))
    metrics.set_meter_provider(
        MeterProvider(resource=Resource.create({SERVICE_NAME: service_name}), metric_readers=[reader])
    )
    log.info("exporting metrics to %s", url)
