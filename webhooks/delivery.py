"""Delivering events to one webhook endpoint.

One run per endpoint at a time (a lease on the webhook row), sending its due deliveries with
up to WEBHOOK_MAX_IN_FLIGHT posts in flight over kept-alive connections (one message's events,
or one session's statuses, one at a time and in order), starting none after the first
failure: a slow or dead endpoint costs one 5 s timeout per run and never holds up another
customer's endpoint (each endpoint has its own runs). Attempts follow the Standard Webhooks
schedule with jitter, honour `Retry-After`, and every attempt is recorded. 2xx is success;
410 disables the webhook; after the last attempt the delivery is `failed` (dead letter); an
endpoint failing continuously for WEBHOOK_DISABLE_AFTER_FAILING_SECONDS is disabled.
"""

import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from infra.metrics import WEBHOOK_ATTEMPTS
from infra.safe_http import Answer, EndpointPool, FetchFailed, Post, UrlRefused
from infra.sql import rows_insert
from webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Webhook
from webhooks.outbox import delivery_wake, event_body
from webhooks.services import webhook_disable
from webhooks.signing import signed_headers

logger = logging.getLogger(__name__)

# Seconds to wait after attempt 1, 2, ... (Standard Webhooks' schedule): 10 attempts over ~3 days.
RETRY_DELAYS = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600,
                24 * 3600]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1
TIMEOUT_SECONDS = 5.0
RUN_BUDGET_SECONDS = 25
LEASE_SECONDS = 60


def retry_delay(attempts: int, retry_after: float | None = None,
                jitter: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds before the next attempt after `attempts` failed ones."""
    base = RETRY_DELAYS[attempts - 1]
    delay = base * (1 + jitter(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_DELAYS[-1]))
    return delay


def _retry_after(answer: Answer) -> float | None:
    value = answer.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _lease(webhook_id: str, owner: str, now: datetime) -> bool:
    return Webhook.objects.filter(
        Q(delivery_lease_until__isnull=True) | Q(delivery_lease_until__lt=now)
        | Q(delivery_lease_owner=owner),
        pk=webhook_id,
    ).update(delivery_lease_owner=owner,
             delivery_lease_until=now + timedelta(seconds=LEASE_SECONDS)) == 1


def _release(webhook_id: str, owner: str) -> None:
    Webhook.objects.filter(pk=webhook_id, delivery_lease_owner=owner).update(
        delivery_lease_owner="", delivery_lease_until=None)


def _due(webhook_id: str, now: datetime):
    return Delivery.objects.filter(webhook_id=webhook_id, status=DeliveryStatus.PENDING,
                                   next_attempt_at__lte=now)


def webhook_deliver_due(*, webhook_id: str, clock: Callable[[], datetime] = timezone.now,
                        jitter: Callable[[float, float], float] = random.uniform) -> str:
    """Send the webhook's due deliveries. Returns why it stopped. `clock` and `jitter` are
    injectable so the schedule can be tested without waiting."""
    owner = uuid.uuid4().hex
    if not _lease(webhook_id, owner, clock()):
        return "busy"
    try:
        return _run(webhook_id, owner, clock, jitter)
    finally:
        _release(webhook_id, owner)


BATCH = 100


def _run(webhook_id, owner, clock, jitter) -> str:
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    if webhook is None or not webhook.is_active or webhook.deleted_at is not None:
        return "inactive"
    started = time.monotonic()
    pool = None
    try:
        while True:
            now = clock()
            # Claimed in batches: one query for up to BATCH due deliveries, in order.
            batch = list(_due(webhook_id, now).select_related("event").order_by("id")[:BATCH])
            if not batch:
                return "idle"
            if pool is not None:  # a batch after the first (the lease was just taken for it)
                # Renewed, and the endpoint looked at again (disabled meanwhile, by a 410 or
                # by support) before anything more is posted to it.
                _lease(webhook_id, owner, now)
                webhook.refresh_from_db(fields=["is_active", "failing_since"])
                if not webhook.is_active:
                    return "inactive"
            else:
                try:
                    pool = EndpointPool(webhook.url, timeout=TIMEOUT_SECONDS,
                                        size=settings.WEBHOOK_MAX_IN_FLIGHT)
                except (UrlRefused, FetchFailed) as refused:
                    _record_failure(webhook, batch[0], now, jitter, error=refused.reason)
                    return "failed"
            outcome = _post_batch(webhook, pool, batch, now, jitter, started)
            if outcome is not None:
                return outcome
    finally:
        if pool is not None:
            pool.close()


def _post_batch(webhook: Webhook, pool: EndpointPool, batch: list[Delivery], now: datetime,
                jitter, started: float) -> str | None:
    """Post a batch, up to the pool's size at a time, the events of one message (or of one
    session's status) one after another, in order. No post starts after the first failure
    (what is in flight is still answered and recorded) or past the run's budget. Returns why
    the run stops, or None to go on."""
    stop = None

    def go_on() -> bool:
        nonlocal stop
        if stop is None and time.monotonic() - started > RUN_BUDGET_SECONDS:
            stop = "budget"
        return stop is None

    def posts():
        for delivery in batch:
            body = event_body(delivery.event)
            yield Post(delivery, _subject(delivery.event), body.encode(), signed_headers(
                webhook, message_id=delivery.event_id, body=body, now=now))

    succeeded: list[tuple[Delivery, Answer, float]] = []
    failed: list[tuple[Delivery, Answer | FetchFailed, float]] = []
    for delivery, answer, latency in pool.post_all(posts(), go_on=go_on):
        if isinstance(answer, Answer) and 200 <= answer.status_code < 300:
            succeeded.append((delivery, answer, latency))
        else:
            failed.append((delivery, answer, latency))
            stop = "failed"
    # Successes first: one in the same batch as a failure ends the endpoint's failing streak
    # before the failure starts a new one.
    _record_successes(webhook, succeeded, now)
    for delivery, answer, latency in failed:
        _record_failed_post(webhook, delivery, answer, latency, now, jitter)
    return stop


def _subject(event: Event) -> tuple[str, str]:
    """What must reach the endpoint in order: a message's events (`sent` before `delivered`
    before `read`), and a session's status changes. Nothing else waits for another."""
    if event.type.startswith("message."):
        return ("message", str(event.data.get("id", event.id)))
    if event.type == "session.status":
        return ("session", event.session_id)
    return ("event", event.id)


# A success ends a failing streak: what a webhook's health fields hold then.
HEALTHY = {"failing_since": None, "consecutive_failures": 0, "failure_notified_at": None}

def _record_successes(webhook: Webhook, succeeded: list, now: datetime) -> None:
    """Bulk writes for a run's successes: the attempt rows, then one update per status code."""
    if not succeeded:
        return
    rows_insert([
        DeliveryAttempt(delivery=delivery, attempted_at=now, status_code=answer.status_code,
                        latency_ms=int(latency * 1000),
                        response_snippet=answer.snippet.decode("utf-8", "replace"))
        for delivery, answer, latency in succeeded
    ])
    by_status: dict[int, list[str]] = {}
    for delivery, answer, _latency in succeeded:
        by_status.setdefault(answer.status_code, []).append(delivery.pk)
    for status_code, ids in by_status.items():
        Delivery.objects.filter(pk__in=ids).update(
            status=DeliveryStatus.SUCCEEDED, attempts=F("attempts") + 1, last_attempt_at=now,
            last_status_code=status_code, last_error="", succeeded_at=now, next_attempt_at=None)
    WEBHOOK_ATTEMPTS.labels("succeeded").inc(len(succeeded))
    if webhook.failing_since is not None:
        Webhook.objects.filter(pk=webhook.pk).update(**HEALTHY)
        webhook.failing_since = None


def _record_failed_post(webhook: Webhook, delivery: Delivery, answer: Answer | FetchFailed,
                        latency: float, now: datetime, jitter) -> None:
    """Record a post that failed: no answer, or an answer other than 2xx."""
    if isinstance(answer, FetchFailed):
        _record_failure(webhook, delivery, now, jitter, error=answer.reason, latency=latency)
        return
    snippet = answer.snippet.decode("utf-8", "replace")
    if answer.status_code == 410:
        _record_failure(webhook, delivery, now, jitter, status_code=410, snippet=snippet,
                        error="the endpoint answered 410 Gone", latency=latency, final=True)
        webhook_disable(webhook_id=webhook.id, reason="The endpoint answered 410 Gone.")
        return
    _record_failure(webhook, delivery, now, jitter, status_code=answer.status_code,
                    snippet=snippet, error=f"HTTP {answer.status_code}", latency=latency,
                    retry_after=_retry_after(answer))


def _record_failure(webhook: Webhook, delivery: Delivery, now: datetime, jitter, *,
                    error: str, status_code: int | None = None, snippet: str = "",
                    latency: float = 0.0, retry_after: float | None = None,
                    final: bool = False) -> None:
    attempts = delivery.attempts + 1
    WEBHOOK_ATTEMPTS.labels("failed" if (final or attempts >= MAX_ATTEMPTS) else "retried").inc()
    DeliveryAttempt.objects.create(delivery=delivery, attempted_at=now, status_code=status_code,
                                   latency_ms=int(latency * 1000),
                                   response_snippet=snippet[:500], error=error[:500])
    update = {"attempts": attempts, "last_attempt_at": now, "last_status_code": status_code,
              "last_error": error[:500]}
    if final or attempts >= MAX_ATTEMPTS:
        update.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        delay = retry_delay(attempts, retry_after, jitter)
        update["next_attempt_at"] = now + timedelta(seconds=delay)
    Delivery.objects.filter(pk=delivery.pk).update(**update)
    Webhook.objects.filter(pk=webhook.pk).update(
        consecutive_failures=F("consecutive_failures") + 1, last_failure_at=now,
        last_failure_error=error[:500], last_failure_status=status_code,
        last_failure_response=snippet[:500])
    failing_since = webhook.failing_since or now
    if webhook.failing_since is None:
        Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=True).update(
            failing_since=now)
        webhook.failing_since = now
    if now - failing_since >= timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS):
        webhook_disable(webhook_id=webhook.id,
                        reason=f"Every delivery failed since {failing_since:%Y-%m-%d %H:%M} UTC "
                               f"(last: {error[:100]}).")


def deliveries_sweep(now: datetime | None = None) -> int:
    """Wake the delivery run of every active webhook with due deliveries (a lost wake-up or a
    dead worker). Returns how many were woken."""
    now = now or timezone.now()
    webhook_ids = set(
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now,
                                webhook__is_active=True)
        .values_list("webhook_id", flat=True).distinct()[:10_000]
    )
    for webhook_id in webhook_ids:
        delivery_wake(webhook_id, dedupe=False)
    return len(webhook_ids)
