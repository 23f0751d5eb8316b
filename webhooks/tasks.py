"""Celery tasks of webhooks: thin, ids in, services do the work."""

from celery import shared_task

from config.wakeups import wake_after_commit, woken


def _scheduled_key(webhook_id: str) -> str:
    return f"delivery-scheduled:{webhook_id}"


def schedule_delivery(webhook_id: str, *, countdown: float | None = None,
                      dedupe: bool = True) -> None:
    """Wake the webhook's delivery run after commit (one pending wake-up per webhook)."""
    wake_after_commit(deliver_webhook, webhook_id, key=_scheduled_key(webhook_id),
                      countdown=countdown, dedupe=dedupe)


@shared_task(name="webhooks.deliver", acks_late=True, ignore_result=True)
def deliver_webhook(webhook_id: str) -> str:
    from django.utils import timezone

    from webhooks.delivery import webhook_deliver_due
    from webhooks.models import Delivery, DeliveryStatus

    outcome = webhook_deliver_due(webhook_id=webhook_id)
    if outcome == "busy":
        # Another run holds the endpoint; it lets the wake-up marker go when it ends and looks
        # again. Left set, the marker keeps the wake-ups of the deliveries arriving meanwhile
        # from starting more runs that would find the endpoint busy too (with a worker of
        # threads, which starts them at once, that was a run per delivery).
        return outcome
    woken(_scheduled_key(webhook_id))  # from now on, a new delivery wakes a new run
    pending = Delivery.objects.filter(webhook_id=webhook_id, status=DeliveryStatus.PENDING)
    if outcome in ("failed", "budget"):
        following = (pending.order_by("next_attempt_at")
                     .values_list("next_attempt_at", flat=True).first())
        if following is not None:
            delay = max((following - timezone.now()).total_seconds(), 0.5)
            schedule_delivery(webhook_id, countdown=delay)
    elif outcome == "idle" and pending.filter(next_attempt_at__lte=timezone.now()).exists():
        schedule_delivery(webhook_id)  # due since the run's last look, its wake-up dropped
    return outcome


@shared_task(name="webhooks.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> int:
    from webhooks.delivery import deliveries_sweep

    return deliveries_sweep()
