"""Reads for webhooks. Another account's webhook or delivery is indistinguishable from a
missing one."""

from collections.abc import Callable

from django.db.models import QuerySet

from api.errors import ApiError, E
from api.serializers import iso
from webhooks.models import Delivery, Webhook


def webhooks_visible(*, account_id: str) -> QuerySet[Webhook]:
    return Webhook.objects.filter(account_id=account_id, deleted_at__isnull=True)


def webhook_get(*, account_id: str, webhook_id: str) -> Webhook:
    hook = webhooks_visible(account_id=account_id).filter(pk=webhook_id).first()
    if hook is None:
        raise ApiError(E.resource_not_found, reason="No such webhook.")
    return hook


def webhooks_failing() -> QuerySet[Webhook]:
    """Endpoints enabled whose deliveries all fail now (retries pending or not): the one
    definition of "failing" the dashboard, the admin and /metrics share."""
    return Webhook.objects.filter(deleted_at__isnull=True, is_active=True,
                                  failing_since__isnull=False)


def webhook_health(hook: Webhook) -> dict:
    """How an endpoint is doing: `healthy`, `failing` (every delivery fails since
    `failingSince`, retried meanwhile) or `disabled`; and its last failure."""
    state = ("disabled" if not hook.is_active else "failing" if hook.failing_since
             else "healthy")
    last = None
    if hook.last_failure_at:
        last = {"at": iso(hook.last_failure_at), "error": hook.last_failure_error,
                "statusCode": hook.last_failure_status,
                "response": hook.last_failure_response or None}
    return {"state": state, "consecutiveFailures": hook.consecutive_failures,
            "failingSince": iso(hook.failing_since), "lastFailure": last}


def delivery_get(*, account_id: str, webhook_id: str, delivery_id: str) -> Delivery:
    hook = webhook_get(account_id=account_id, webhook_id=webhook_id)
    delivery = (Delivery.objects.filter(webhook=hook, pk=delivery_id).select_related("event")
                .first())
    if delivery is None:
        raise ApiError(E.resource_not_found, reason="No such delivery.")
    delivery.webhook = hook
    return delivery


# Whether a session id names one of an account's sessions (a webhook may be limited to one):
# the sessions app registers its check when it starts, since webhooks import no app above
# accounts (the sessions app makes events, and so depends on webhooks).
SessionCheck = Callable[[str, str], bool]
_session_checks: list[SessionCheck] = []


def session_check_register(check: SessionCheck) -> None:
    """`check(account_id, session_id)`: True when the session is one of the account's."""
    if check not in _session_checks:
        _session_checks.append(check)


def session_of_account(*, account_id: str, session_id: str, field: str) -> str:
    """`session_id`, if it names one of the account's sessions; `session_not_found` else."""
    if not _session_checks or not all(check(account_id, session_id)
                                      for check in _session_checks):
        raise ApiError(E.session_not_found, field=field)
    return session_id
