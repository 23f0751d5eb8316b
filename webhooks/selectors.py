"""Reads for webhooks. Another account's webhook or delivery is indistinguishable from a
missing one."""

from django.db.models import QuerySet

from config.errors import ApiError, E
from webhooks.models import Delivery, Webhook


def webhooks_visible(*, account_id: str) -> QuerySet[Webhook]:
    return Webhook.objects.filter(account_id=account_id, deleted_at__isnull=True)


def webhook_get(*, account_id: str, webhook_id: str) -> Webhook:
    hook = webhooks_visible(account_id=account_id).filter(pk=webhook_id).first()
    if hook is None:
        raise ApiError(E.resource_not_found, reason="No such webhook.")
    return hook


def delivery_get(*, account_id: str, webhook_id: str, delivery_id: str) -> Delivery:
    hook = webhook_get(account_id=account_id, webhook_id=webhook_id)
    delivery = (Delivery.objects.filter(webhook=hook, pk=delivery_id).select_related("event")
                .first())
    if delivery is None:
        raise ApiError(E.resource_not_found, reason="No such delivery.")
    delivery.webhook = hook
    return delivery
