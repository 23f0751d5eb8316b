"""Celery tasks of webhooks: thin, ids in, services do the work."""

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def _scheduled_key(webhook_id: str) -> str:
    return f"delivery-scheduled:{webhook_id}"


def schedule_delivery(webhook_id: str, *, countdown: float | None = None,
                      dedupe: bool = True) -> None:
    """Wake the webhook's delivery run after commit (one pending wake-up per webhook)."""

    def enqueue() -> None:
        try:
            if countdown is not None or not dedupe:
                deliver_webhook.apply_async(args=[webhook_id], countdown=countdown)
            elif cache.add(_scheduled_key(webhook_id), 1, timeout=60):
                deliver_webhook.delay(webhook_id)
        except Exception:  # broker down: the sweeper wakes it later
            logger.warning("could not schedule deliveries of %s", webhook_id, exc_info=True)

    transaction.on_commit(enqueue)


@shared_task(name="webhooks.deliver", acks_late=True, ignore_result=True)
def deliver_webhook(webhook_id: str) -> str:
    from django.utils import timezone

    from webhooks.delivery import webhook_deliver_due
    from webhooks.models import Delivery, DeliveryStatus

    cache.delete(_scheduled_key(webhook_id))
    outcome = webhook_deliver_due(webhook_id=webhook_id)
    if outcome in ("failed", "budget"):
        following = (Delivery.objects.filter(webhook_id=webhook_id,
                                             status=DeliveryStatus.PENDING)
                     .order_by("next_attempt_at").values_list("next_attempt_at", flat=True)
                     .first())
        if following is not None:
            delay = max((following - timezone.now()).total_seconds(), 0.5)
            schedule_delivery(webhook_id, countdown=delay)
    return outcome


@shared_task(name="webhooks.sweep_deliveries", ignore_result=True)
def sweep_deliveries() -> int:
    from webhooks.delivery import deliveries_sweep

    return deliveries_sweep()
