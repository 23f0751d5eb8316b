"""`/metrics` for Prometheus: the counters (infra/metrics.py) and, read from the database when
scraped, gauges of the state: queued messages, pending deliveries, sessions by status (one
indexed query each)."""

import os

from django.conf import settings
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from messaging.models import Message
from sessions_app.models import Session
from sessions_app.selectors import engine_hosts_report
from webhooks.models import Delivery
from webhooks.selectors import webhooks_failing


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
        queued = GaugeMetricFamily("wa_messages_queued", "Outbound messages not yet sent")
        queued.add_metric([], Message.objects.filter(status__in=["queued", "sending"]).count())
        yield queued
        pending = GaugeMetricFamily("wa_webhook_deliveries_pending", "Deliveries to be made")
        pending.add_metric([], Delivery.objects.filter(status="pending").count())
        yield pending
        failing = GaugeMetricFamily("wa_webhook_endpoints_failing",
                                    "Enabled webhook endpoints whose every delivery fails now")
        failing.add_metric([], webhooks_failing().count())
        yield failing
        sessions = GaugeMetricFamily("wa_sessions", "Sessions by status", labels=["status"])
        counts = dict(Session.objects.filter(deleted_at__isnull=True).values_list("status")
                      .annotate(n=Count("id")).values_list("status", "n"))
        for status, count in sorted(counts.items()):
            sessions.add_metric([status], count)
        yield sessions
        yield from _engine_host_gauges()


def _engine_host_gauges():
    """The real engine's hosts (nothing for the sandbox, which runs in the service)."""
    report, _healthy = engine_hosts_report()
    if report is None:
        return
    for name, key, text in (
            ("wa_engine_hosts_alive", "alive", "Engine hosts alive"),
            ("wa_engine_sessions_owned", "sessionsOwned", "Sessions the engine hosts run"),
            ("wa_engine_capacity_left", "capacityLeft",
             "Sessions the engine hosts can still take (absent: unlimited)")):
        if report[key] is not None:
            gauge = GaugeMetricFamily(name, text)
            gauge.add_metric([], report[key])
            yield gauge


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:  # off by default: the figures are the operator's, not the internet's
        return HttpResponse("metrics are off: set METRICS_TOKEN to serve them\n", status=404,
                            content_type="text/plain")
    if not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    state = CollectorRegistry()
    state.register(StateCollector())
    body = generate_latest(registry) + generate_latest(state)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
