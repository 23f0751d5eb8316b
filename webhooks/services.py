"""Writes for webhooks: the event outbox, registration with its checks, rotation, replay."""

import functools
import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.errors import ApiError, E
from config.ids import new_id
from config.local_cache import LocalTTLCache
from config.safe_http import FetchFailed, PinnedEndpoint, UrlRefused
from config.sql import objects_insert
from webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Webhook
from webhooks.signing import secret_generate, signature_headers

logger = logging.getLogger(__name__)

EVENT_TYPES = ("message.received", "message.status", "session.status")
USER_AGENT = f"{settings.SERVICE_NAME}-webhooks/1"
TEST_TIMEOUT_SECONDS = 5.0
URL_MAX_LENGTH = 2048  # Webhook.url's column


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_record(*, account_id: str, type: str, session_id: str, data: dict[str, Any]) -> Event:
    """Record an event and queue one delivery per matching webhook. Call it inside the
    transaction that made the change: the event and its deliveries exist if and only if the
    change does (a durable outbox), and delivery starts after commit."""
    return events_record([EventSpec(account_id, type, session_id, data)])[0]


@dataclass(frozen=True)
class EventSpec:
    account_id: str
    type: str
    session_id: str
    data: dict[str, Any]


def events_record(specs: list[EventSpec]) -> list[Event]:
    """`event_record` for many events at once, in order: one COPY for the events, one query
    for the accounts' webhooks, one COPY for the deliveries (a batch of receipts is a few
    statements, not a few per receipt)."""
    events, deliveries = events_prepare(specs)
    objects_insert(events)
    objects_insert(deliveries)
    deliveries_schedule(deliveries)
    return events


_EVENTS_FIELD = Webhook._meta.get_field("events")
# (id, event types, session id): what matching an event needs of a webhook.
Hook = tuple[str, list[str], str | None]


@functools.cache
def _columns() -> dict[str, str]:
    quote = connection.ops.quote_name
    column = {name: quote(Webhook._meta.get_field(name).column)
              for name in ("id", "account", "events", "session", "is_active", "deleted_at")}
    return {"table": quote(Webhook._meta.db_table), **column,
            "active": f"{column['is_active']} AND {column['deleted_at']} IS NULL"}


def _active_webhooks_of(account_ids: list[str]) -> dict[str, list[Hook]]:
    """The accounts' active webhooks, the few columns matching needs, in plain SQL (this runs
    for every event recorded, and the ORM spends more CPU building the query than the
    database spends answering it)."""
    c = _columns()
    sql = (f"SELECT {c['id']}, {c['account']}, {c['events']}, {c['session']} "  # noqa: S608
           f"FROM {c['table']} WHERE {c['account']} IN ({', '.join('%s' for _ in account_ids)})"
           f" AND {c['active']}")
    hooks_of: dict[str, list[Hook]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, account_ids)
        for webhook_id, account_id, types, session_id in cursor.fetchall():
            hooks_of.setdefault(account_id, []).append(
                (webhook_id, _EVENTS_FIELD.from_db_value(types, None, connection), session_id))
    return hooks_of


@functools.cache
def webhooks_fingerprint_sql() -> str:
    """PostgreSQL: one value that changes whenever anything matching looks at changes among an
    account's active webhooks (one is added, removed, disabled, or given other event types or
    another session). Its one parameter is the account's id."""
    c = _columns()
    return (f"SELECT md5(string_agg({c['id']} || ' ' || {c['events']}::text || ' ' || "  # noqa: S608
            f"coalesce({c['session']}, ''), ',' ORDER BY {c['id']})) AS fingerprint "
            f"FROM {c['table']} WHERE {c['account']} = %s AND {c['active']}")


@dataclass(frozen=True)
class AccountWebhooks:
    fingerprint: str | None  # webhooks_fingerprint_sql's answer when `hooks` were read
    hooks: list[Hook]


# Per process: the webhooks of the accounts whose events this process records. A copy is
# never trusted: the statement that uses it checks its fingerprint (see message_sent_record).
_webhooks_seen = LocalTTLCache(ttl=3600, max_size=10_000)


def account_webhooks_seen(account_id: str) -> AccountWebhooks:
    """PostgreSQL: this process's copy of the account's active webhooks, read if it has none
    (rows and fingerprint in one statement, so they agree)."""
    seen = _webhooks_seen.get(account_id)
    if seen is None:
        c = _columns()
        sql = (f"SELECT {c['id']}, {c['events']}, {c['session']}, "  # noqa: S608
               f"({webhooks_fingerprint_sql()}) FROM {c['table']} WHERE {c['account']} = %s "
               f"AND {c['active']} ORDER BY {c['id']}")
        with connection.cursor() as cursor:
            cursor.execute(sql, [account_id, account_id])
            rows = cursor.fetchall()
        seen = AccountWebhooks(
            fingerprint=rows[0][3] if rows else None,  # of no webhooks: NULL
            hooks=[(webhook_id, _EVENTS_FIELD.from_db_value(types, None, connection), session)
                   for webhook_id, types, session, _fingerprint in rows])
        _webhooks_seen.set(account_id, seen)
    return seen


def account_webhooks_forget(account_id: str) -> None:
    _webhooks_seen.delete(account_id)


def events_prepare(specs: list[EventSpec], *, hooks_of: dict[str, list[Hook]] | None = None,
                   ) -> tuple[list[Event], list[Delivery]]:
    """The events and their deliveries (one per matching webhook), built but not saved: for a
    caller that writes them in a statement of its own, then calls `deliveries_schedule`.
    `hooks_of`: the accounts' webhooks if the caller has them (read here otherwise)."""
    for spec in specs:
        if spec.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {spec.type!r}")
    events = [Event(account_id=spec.account_id, type=spec.type, session_id=spec.session_id,
                    data=spec.data) for spec in specs]
    if hooks_of is None:
        hooks_of = _active_webhooks_of(list(dict.fromkeys(spec.account_id for spec in specs)))
    now = timezone.now()
    deliveries = [
        Delivery(webhook_id=webhook_id, event=event, next_attempt_at=now)
        for event in events
        for webhook_id, types, session_id in hooks_of.get(event.account_id, ())
        if event.type in types and session_id in (None, event.session_id)
    ]
    return events, deliveries


def deliveries_schedule(deliveries: list[Delivery]) -> None:
    """Wake the delivery run of each webhook that got a delivery, after commit."""
    from webhooks.tasks import schedule_delivery

    for webhook_id in dict.fromkeys(delivery.webhook_id for delivery in deliveries):
        schedule_delivery(webhook_id)


def event_body(event: Event) -> str:
    """The delivered JSON body, the same bytes on every retry."""
    return json.dumps(
        {"id": event.id, "event": event.type, "createdAt": _iso(event.created_at),
         "sessionId": event.session_id or None, "data": event.data},
        separators=(",", ":"), sort_keys=True,
    )


def secrets_in_use(webhook: Webhook, now=None) -> list[str]:
    now = now or timezone.now()
    in_use = [webhook.secret]
    if webhook.previous_secret and webhook.previous_secret_expires_at and (
        webhook.previous_secret_expires_at > now
    ):
        in_use.append(webhook.previous_secret)
    return in_use


def signed_headers(webhook: Webhook, *, message_id: str, body: str, now=None) -> dict[str, str]:
    now = now or timezone.now()
    return {
        **signature_headers(secrets_in_use=secrets_in_use(webhook, now), message_id=message_id,
                            timestamp=now, body=body),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


# --- registration --------------------------------------------------------------------------


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
        if name not in EVENT_TYPES:
            raise ApiError(E.invalid_webhook_event, field="events",
                           reason=f"'{name}' is not an event; use {', '.join(EVENT_TYPES)}.")
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
    body = json.dumps({"id": event_id, "event": TEST_EVENT, "createdAt": _iso(timezone.now()),
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
        webhook.disabled_at = webhook.failing_since = None
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
        from webhooks.tasks import schedule_delivery

        transaction.on_commit(lambda: schedule_delivery(webhook.id))
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
    from webhooks.tasks import schedule_delivery

    transaction.on_commit(lambda: schedule_delivery(delivery.webhook_id, dedupe=False))
    delivery.refresh_from_db()
    return delivery
