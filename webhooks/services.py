"""Writes for webhooks: registration with its checks, changes, rotation, replay."""

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.models import MemberRole, Membership
from api.errors import ApiError, E
from api.serializers import iso
from infra.ids import new_id
from infra.safe_http import FetchFailed, PinnedEndpoint, UrlRefused
from webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Webhook
from webhooks.outbox import ALL_EVENTS, EVENT_TYPES, delivery_wake, event_body
from webhooks.selectors import webhooks_failing
from webhooks.signing import USER_AGENT, secret_generate, secrets_in_use, signature_headers

logger = logging.getLogger(__name__)

TEST_TIMEOUT_SECONDS = 5.0
URL_MAX_LENGTH = 2048  # Webhook.url's column


def validate_webhook_url(url: str) -> str:
    """Shape and scheme only (the address is checked when the test event is sent)."""
    if len(url) > URL_MAX_LENGTH:
        raise ApiError(E.invalid_webhook_url, field="url",
                       reason=f"Longer than {URL_MAX_LENGTH} characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError:
        raise ApiError(E.invalid_webhook_url, field="url", reason="Malformed URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(E.invalid_webhook_url, field="url",
                       reason="Use an absolute http(s) URL.")
    if parts.scheme == "http" and settings.WEBHOOK_REQUIRE_HTTPS:
        raise ApiError(E.invalid_webhook_url, field="url", reason="Use an https URL.")
    if parts.username or parts.password:
        raise ApiError(E.invalid_webhook_url, field="url",
                       reason="Credentials in the URL are not allowed.")
    return url


def validate_events(events: list[str]) -> list[str]:
    if not events:
        raise ApiError(E.invalid_webhook_event, field="events",
                       reason="Name at least one event.")
    for name in events:
        if name not in EVENT_TYPES and name != ALL_EVENTS:
            raise ApiError(E.invalid_webhook_event, field="events", reason=(
                f"'{name}' is not an event; use {', '.join(EVENT_TYPES)}, or {ALL_EVENTS} "
                "for all of them."))
    return list(dict.fromkeys(events))


TEST_EVENT = "webhook.test"


def _post_test(*, url: str, secrets: list[str], event_id: str, body: str
               ) -> tuple[int | None, int, str, ApiError | None]:
    """Post a signed test body now (5 s at most): (status code, latency ms, answer snippet,
    the documented error or None when the endpoint took it)."""
    headers = {**signature_headers(secrets_in_use=secrets, message_id=event_id,
                                   timestamp=timezone.now(), body=body),
               "Content-Type": "application/json", "User-Agent": USER_AGENT}
    started = timezone.now()

    def elapsed_ms() -> int:
        return int((timezone.now() - started).total_seconds() * 1000)

    try:
        with PinnedEndpoint(url, timeout=TEST_TIMEOUT_SECONDS) as endpoint:
            answer = endpoint.post(body.encode(), headers)
    except UrlRefused as refused:
        return None, elapsed_ms(), "", ApiError(E.invalid_webhook_url, field="url",
                                                reason=refused.reason)
    except FetchFailed as failed:
        if failed.timeout:
            return None, elapsed_ms(), "", ApiError(E.webhook_response_timeout, field="url",
                                                    reason="No answer within 5 seconds.")
        return None, elapsed_ms(), "", ApiError(E.webhook_url_unreachable, field="url",
                                                reason=failed.reason)
    snippet = answer.snippet.decode("utf-8", "replace")
    if not 200 <= answer.status_code < 300:
        return answer.status_code, elapsed_ms(), snippet, ApiError(
            E.webhook_url_unreachable, field="url",
            reason=f"The test event was answered with HTTP {answer.status_code}.")
    return answer.status_code, elapsed_ms(), snippet, None


def webhook_send_test(*, url: str, secrets: list[str]) -> dict:
    """Send a signed `webhook.test` event to a URL being registered and wait for the answer.
    Raises the documented error when the endpoint cannot take it."""
    event_id = new_id("evt")
    body = json.dumps({"id": event_id, "event": TEST_EVENT, "createdAt": iso(timezone.now()),
                       "sessionId": None, "data": {"message": "Test event"}},
                      separators=(",", ":"))
    status_code, latency, _snippet, error = _post_test(url=url, secrets=secrets,
                                                       event_id=event_id, body=body)
    if error is not None:
        raise error
    return {"eventId": event_id, "statusCode": status_code, "latencyMs": latency}


def webhook_test(*, webhook: Webhook) -> dict:
    """Send a signed `webhook.test` event to a registered webhook now. The event, its delivery
    and the attempt are recorded (listed with the deliveries, and can be redelivered);
    a failure is recorded, then raised as the documented error."""
    with transaction.atomic():
        event = Event.objects.create(account_id=webhook.account_id, type=TEST_EVENT,
                                     session_id="", data={"message": "Test event"})
        delivery = Delivery.objects.create(webhook=webhook, event=event,
                                           status=DeliveryStatus.PENDING, next_attempt_at=None)
    attempted_at = timezone.now()
    status_code, latency, snippet, error = _post_test(
        url=webhook.url, secrets=secrets_in_use(webhook), event_id=event.id,
        body=event_body(event))
    reason = (error.details.get("reason") or error.message) if error else ""
    with transaction.atomic():
        DeliveryAttempt.objects.create(delivery=delivery, attempted_at=attempted_at,
                                       status_code=status_code, latency_ms=latency,
                                       response_snippet=snippet[:500], error=reason[:500])
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED if error else DeliveryStatus.SUCCEEDED, attempts=1,
            last_attempt_at=attempted_at, last_status_code=status_code,
            last_error=reason[:500], succeeded_at=None if error else attempted_at)
    if error is not None:
        raise error
    return {"eventId": event.id, "statusCode": status_code, "latencyMs": latency,
            "deliveryId": delivery.id}


def webhook_create(*, account_id: str, url: str, events: list[str], session_id: str | None,
                   secret: str | None, description: str = "") -> Webhook:
    validate_webhook_url(url)
    events = validate_events(events)
    secret = secret or secret_generate()
    webhook_send_test(url=url, secrets=[secret])
    return Webhook.objects.create(account_id=account_id, url=url, events=events,
                                  session_id=session_id, secret=secret,
                                  description=description)


UNCHANGED: Any = object()  # a PATCH field that was not sent (None means "clear it")


def webhook_update(*, webhook: Webhook, url: str | None = None, events: list[str] | None = None,
                   session_id: str | None = UNCHANGED, enabled: bool | None = None,
                   description: str | None = None, rotate_secret: bool = False,
                   secret: str | None = None) -> tuple[Webhook, str | None]:
    """Change a webhook. Returns it with the new secret when the secret was rotated (shown
    once); the old secret keeps signing for WEBHOOK_SECRET_GRACE_SECONDS."""
    if url is not None and url != webhook.url:
        validate_webhook_url(url)
        webhook_send_test(url=url, secrets=secrets_in_use(webhook))
        webhook.url = url
    if events is not None:
        webhook.events = validate_events(events)
    if session_id is not UNCHANGED:
        webhook.session_id = session_id
    if description is not None:
        webhook.description = description
    if enabled is True and not webhook.is_active:
        webhook.is_active, webhook.disabled_reason = True, ""
        webhook.disabled_at = webhook.failing_since = webhook.failure_notified_at = None
        webhook.consecutive_failures = 0  # a fresh start: the last failure stays on record
    elif enabled is False and webhook.is_active:
        webhook.is_active, webhook.disabled_reason = False, "disabled through the API"
        webhook.disabled_at = timezone.now()
    new_secret = None
    if rotate_secret or secret:
        new_secret = secret or secret_generate()
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires_at = timezone.now() + timedelta(
            seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS)
        webhook.secret = new_secret
    webhook.save()
    if enabled:
        delivery_wake(webhook.id)
    return webhook, new_secret


def webhook_delete(*, webhook: Webhook) -> None:
    webhook.deleted_at = timezone.now()
    webhook.is_active = False
    webhook.save(update_fields=["deleted_at", "is_active", "updated_at"])


def webhook_disable(*, webhook_id: str, reason: str) -> None:
    Webhook.objects.filter(pk=webhook_id, is_active=True).update(
        is_active=False, disabled_reason=reason[:300], disabled_at=timezone.now())
    logger.warning("webhook %s disabled: %s", webhook_id, reason)


def delivery_retry(*, delivery: Delivery) -> Delivery:
    """Deliver again now (replay), whatever its state; its attempts go on being recorded."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    delivery_wake(delivery.webhook_id, dedupe=False)
    delivery.refresh_from_db()
    return delivery


def events_purge(now: datetime | None = None) -> int:
    """Delete the events older than EVENT_RETENTION_DAYS, with their finished deliveries; one
    still being delivered stays until it is done. Returns how many went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EVENT_RETENTION_DAYS)
    expired = (Event.objects.filter(created_at__lt=cutoff)
               .exclude(deliveries__status=DeliveryStatus.PENDING))
    ids = list(expired.values_list("id", flat=True)[:5000])
    Event.objects.filter(pk__in=ids).delete()
    return len(ids)


def failing_endpoints_notify(*, now: datetime | None = None) -> int:
    """Email the account's owners, once per failing streak, about each endpoint that has
    failed every delivery for WEBHOOK_FAILURE_EMAIL_AFTER_SECONDS. Returns how many endpoints
    were reported."""
    after = settings.WEBHOOK_FAILURE_EMAIL_AFTER_SECONDS
    if after <= 0:
        return 0
    now = now or timezone.now()
    due = (webhooks_failing().filter(failing_since__lte=now - timedelta(seconds=after),
                                     failure_notified_at__isnull=True)
           .select_related("account").order_by("failing_since"))
    reported = 0
    for hook in due[:100]:
        # Claimed before sending: two sweepers at once report it once.
        if not Webhook.objects.filter(pk=hook.pk, failure_notified_at__isnull=True).update(
                failure_notified_at=now):
            continue
        owners = list(Membership.objects.filter(account_id=hook.account_id,
                                                role=MemberRole.OWNER)
                      .values_list("user__email", flat=True))
        if owners:
            send_mail(subject=f"Webhook failing: {hook.url}",
                      message=_failing_message(hook), from_email=None, recipient_list=owners)
        reported += 1
    return reported


def _failing_message(hook: Webhook) -> str:
    last = (f"{hook.last_failure_error}"
            + (f", answering: {hook.last_failure_response[:200]}"
               if hook.last_failure_response else ""))
    return (f"Every delivery to your webhook endpoint {hook.url} ({hook.id}) of "
            f"{hook.account.name} has failed since {hook.failing_since:%Y-%m-%d %H:%M} UTC: "
            f"{hook.consecutive_failures} failed attempts in a row, the last one {last}.\n\n"
            f"Deliveries are retried for about three days, and the endpoint is disabled "
            f"after {settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS // 86_400} days of "
            f"failures. The dashboard (Webhooks) shows every attempt; once the endpoint "
            f"answers 2xx again, pending deliveries go out by themselves, and failed ones can "
            f"be redelivered. You are told once per failing streak.")
