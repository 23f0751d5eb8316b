"""Celery tasks of webhooks: thin, ids in, services do the work."""

from celery import shared_task
from django.utils import timezone

from infra.wakeups import woken
from webhooks.delivery import deliveries_sweep, webhook_deliver_due
from webhooks.models import Delivery, DeliveryStatus
from webhooks.outbox import DELIVERY_TASK, delivery_wake, delivery_wake_key
from webhooks.services import events_purge, failing_endpoints_notify


@shared_task(name=DELIVERY_TASK, acks_late=True, ignore_result=True)
def deliver_webhook(webhook_id: str) -> str:
    outcome = webhook_deliver_due(webhook_id=webhook_id)
    if outcome == "busy":
        # Another run holds the endpoint; it lets the wake-up marker go when it ends and looks
        # again. Left set, the marker keeps the wake-ups of the deliveries arriving meanwhile
        # from starting more runs that would find the endpoint busy too (with a worker of
        # threads, which starts them at once, that was a run per delivery).
        return outcome
    woken(delivery_wake_key(webhook_id))  # from now on, a new delivery wakes a new run
    pending = Delivery.objects.filter(webhook_id=webhook_id, status=DeliveryStatus.PENDING)
    if outcome in ("failed", "budget"):
        following = (pending.order_by("next_attempt_at")
                     .values_list("next_attempt_at", flat=True).first())
        if following is not None:
            delay = max((following - timezone.now()).total_seconds(), 0.5)
            delivery_wake(webhook_id, countdown=delay)
    elif outcome == "idle" and pending.filter(next_attempt_at__lte=timezone.now()).exists():
        delivery_wake(webhook_id)  # due since the run's last look, its wake-up dropped
    return outcome


@shared_task(name="webhooks.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> int:
    return deliveries_sweep()


@shared_task(name="webhooks.purge_events", ignore_result=True)
def purge_events() -> int:
    return events_purge()


@shared_task(name="webhooks.notify_failing_endpoints", ignore_result=True)
def notify_failing_endpoints() -> int:
    return failing_endpoints_notify()
