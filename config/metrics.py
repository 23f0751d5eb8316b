"""Prometheus metrics at /metrics.

Counters are incremented where things happen (requests, message statuses, webhook attempts);
with several processes (gunicorn workers, Celery) set PROMETHEUS_MULTIPROC_DIR to one shared
empty folder and prometheus-client adds them up. Gauges that describe the state (queues,
sessions by status) are read from the database when scraped: one indexed query each.
"""

import os

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

API_REQUESTS = Counter("wa_api_requests_total", "API responses",
                       ["method", "status", "code"])
API_LATENCY = Histogram("wa_api_request_seconds", "API response time",
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
MESSAGE_STATUS = Counter("wa_message_status_total", "Messages reaching a status", ["status"])
WEBHOOK_ATTEMPTS = Counter("wa_webhook_attempts_total", "Webhook delivery attempts",
                           ["outcome"])


class StateCollector:
    """Queue depth and sessions by status, read when Prometheus scrapes. A scrape must work
    while the database is down: then these are left out and `wa_state_available` is 0."""

    def collect(self):
        try:
            families = list(self._collect())
        except Exception:
            families = []
        available = GaugeMetricFamily("wa_state_available",
                                      "1 when the state gauges could be read from the database")
        available.add_metric([], 1 if families else 0)
        yield available
        yield from families

    def _collect(self):
        from messaging.models import Message
        from sessions_app.models import Session
        from webhooks.models import Delivery

        queued = GaugeMetricFamily("wa_messages_queued", "Outbound messages not yet sent")
        queued.add_metric([], Message.objects.filter(status__in=["queued", "sending"]).count())
        yield queued
        pending = GaugeMetricFamily("wa_webhook_deliveries_pending", "Deliveries to be made")
        pending.add_metric([], Delivery.objects.filter(status="pending").count())
        yield pending
        sessions = GaugeMetricFamily("wa_sessions", "Sessions by status", labels=["status"])
        counts = dict(Session.objects.filter(deleted_at__isnull=True).values_list("status")
                      .annotate(n=Count("id")).values_list("status", "n"))
        for status, count in sorted(counts.items()):
            sessions.add_metric([status], count)
        yield sessions


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if token and request.headers.get("Authorization", "") != f"Bearer {token}":
        return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector())
    body = generate_latest(registry) + generate_latest(state)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
