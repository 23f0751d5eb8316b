import json

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers

from accounts.scopes import WEBHOOKS_READ, WEBHOOKS_WRITE
from api.errors import ApiError, E
from api.pagination import choice_filter, paginate
from api.schema import envelope, list_parameters
from api.serializers import InputSerializer, StrictBooleanField, StrictCharField, iso
from api.views import ApiView, ok
from webhooks.models import Delivery, DeliveryStatus, Event, Webhook
from webhooks.outbox import EVENT_TYPES, event_body
from webhooks.selectors import (
    delivery_get,
    session_of_account,
    webhook_get,
    webhook_health,
    webhooks_visible,
)
from webhooks.services import (
    TEST_EVENT,
    UNCHANGED,
    delivery_retry,
    webhook_create,
    webhook_delete,
    webhook_test,
    webhook_update,
)
from webhooks.signing import secret_is_valid


class EventOutput(serializers.Serializer):
    """An event as webhooks deliver it."""

    id = serializers.CharField()
    event = serializers.ChoiceField(choices=list(EVENT_TYPES))
    createdAt = serializers.DateTimeField()
    sessionId = serializers.CharField(allow_null=True)
    data = serializers.DictField(help_text="the message or session as the API shows it, or "
                                           "the reaction")


class FailureOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    error = serializers.CharField(help_text="what went wrong: `HTTP 500`, a timeout...")
    statusCode = serializers.IntegerField(allow_null=True)
    response = serializers.CharField(allow_null=True,
                                     help_text="the first 500 characters of the answer")


class HealthOutput(serializers.Serializer):
    state = serializers.ChoiceField(choices=["healthy", "failing", "disabled"])
    consecutiveFailures = serializers.IntegerField(help_text="failed posts in a row")
    failingSince = serializers.DateTimeField(allow_null=True, help_text=(
        "since when every delivery has failed (retries go on meanwhile)"))
    lastFailure = FailureOutput(allow_null=True)


class WebhookOutput(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    sessionId = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    disabledReason = serializers.CharField(allow_null=True)
    health = HealthOutput()
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()

    def to_representation(self, hook: Webhook) -> dict:
        return {"id": hook.id, "url": hook.url, "events": hook.events,
                "sessionId": hook.session_id, "description": hook.description,
                "enabled": hook.is_active, "disabledReason": hook.disabled_reason or None,
                "health": webhook_health(hook),
                "createdAt": iso(hook.created_at), "updatedAt": iso(hook.updated_at)}


class WebhookWithSecretOutput(WebhookOutput):
    secret = serializers.CharField(help_text="shown only when created or rotated")


class AttemptOutput(serializers.Serializer):
    attemptedAt = serializers.DateTimeField()
    statusCode = serializers.IntegerField(allow_null=True)
    latencyMs = serializers.IntegerField()
    responseSnippet = serializers.CharField()
    error = serializers.CharField(allow_null=True)


class TestResultOutput(serializers.Serializer):
    eventId = serializers.CharField()
    statusCode = serializers.IntegerField()
    latencyMs = serializers.IntegerField()
    deliveryId = serializers.CharField(help_text="the recorded delivery, listed and redeliverable")


class DeliveryOutput(serializers.Serializer):
    id = serializers.CharField()
    webhookId = serializers.CharField()
    eventId = serializers.CharField()
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=DeliveryStatus.values)
    attempts = serializers.IntegerField()
    nextAttemptAt = serializers.DateTimeField(allow_null=True)
    lastAttemptAt = serializers.DateTimeField(allow_null=True)
    lastStatusCode = serializers.IntegerField(allow_null=True)
    lastError = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField()
    attemptLog = AttemptOutput(many=True)

    def to_representation(self, d: Delivery) -> dict:
        return {
            "id": d.id, "webhookId": d.webhook_id, "eventId": d.event_id, "event": d.event.type,
            "status": d.status, "attempts": d.attempts,
            "nextAttemptAt": iso(d.next_attempt_at), "lastAttemptAt": iso(d.last_attempt_at),
            "lastStatusCode": d.last_status_code, "lastError": d.last_error or None,
            "createdAt": iso(d.created_at),
            "attemptLog": [
                {"attemptedAt": iso(a.attempted_at), "statusCode": a.status_code,
                 "latencyMs": a.latency_ms, "responseSnippet": a.response_snippet,
                 "error": a.error or None}
                for a in d.attempt_log.all()
            ],
        }


class _EventsField(serializers.ListField):
    child = StrictCharField()


class _SecretMixin:
    def validate_secret(self, value: str) -> str:
        if not secret_is_valid(value):
            raise ApiError(E.invalid_request, field="secret",
                           reason="Use whsec_ followed by base64 of 24 to 64 random bytes.")
        return value


class WebhookCreateInput(_SecretMixin, InputSerializer):
    # Length, shape and scheme (an empty one too): validate_webhook_url.
    url = StrictCharField(allow_blank=True)
    events = _EventsField(help_text=", ".join(EVENT_TYPES))
    sessionId = StrictCharField(required=False, allow_null=True)
    secret = StrictCharField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=200, default="")


class WebhookUpdateInput(_SecretMixin, InputSerializer):
    url = StrictCharField(required=False, allow_blank=True)
    events = _EventsField(required=False)
    sessionId = StrictCharField(required=False, allow_null=True)
    enabled = StrictBooleanField(required=False)
    description = StrictCharField(required=False, allow_blank=True, max_length=200)
    rotateSecret = StrictBooleanField(required=False, help_text="make a new signing secret")
    secret = StrictCharField(required=False, help_text="rotate to this secret")


def _webhook(request, webhook_id: str) -> Webhook:
    return webhook_get(account_id=request.auth.account_id, webhook_id=webhook_id)


def _session_id(request, data: dict) -> str | None:
    session_id = data.get("sessionId")
    if session_id is None:
        return None
    return session_of_account(account_id=request.auth.account_id, session_id=session_id,
                              field="sessionId")


WEBHOOK_WRITE_ERRORS = ("invalid_webhook_url", "invalid_webhook_event", "webhook_url_unreachable",
                        "webhook_response_timeout", "session_not_found")


class WebhookListCreateApi(ApiView):
    required_scopes = {"GET": WEBHOOKS_READ, "POST": WEBHOOKS_WRITE}
    error_codes = WEBHOOK_WRITE_ERRORS

    @extend_schema(operation_id="webhooks_list", summary="List webhooks",
                   parameters=list_parameters(), responses=envelope(WebhookOutput, many=True))
    def get(self, request):
        page, next_cursor = paginate(
            request.query_params,
            webhooks_visible(account_id=request.auth.account_id))
        return ok(WebhookOutput(page, many=True).data, pagination={"nextCursor": next_cursor})

    @extend_schema(operation_id="webhooks_create",
                   summary="Register a webhook (a signed webhook.test is sent first)",
                   request=WebhookCreateInput, responses={201: envelope(WebhookWithSecretOutput)})
    def post(self, request):
        data = self.validated(WebhookCreateInput, request.data)
        hook = webhook_create(account_id=request.auth.account_id, url=data["url"],
                              events=data["events"], session_id=_session_id(request, data),
                              secret=data.get("secret"), description=data["description"])
        return ok({**WebhookOutput(hook).data, "secret": hook.secret}, status=201)


class WebhookDetailApi(ApiView):
    required_scopes = {"GET": WEBHOOKS_READ, "PATCH": WEBHOOKS_WRITE, "DELETE": WEBHOOKS_WRITE}
    error_codes = ("resource_not_found", *WEBHOOK_WRITE_ERRORS)

    @extend_schema(operation_id="webhooks_get", summary="Get a webhook",
                   responses=envelope(WebhookOutput))
    def get(self, request, webhook_id: str):
        return ok(WebhookOutput(_webhook(request, webhook_id)).data)

    @extend_schema(operation_id="webhooks_update",
                   summary="Change a webhook, enable or disable it, rotate its secret",
                   request=WebhookUpdateInput, responses=envelope(WebhookOutput))
    def patch(self, request, webhook_id: str):
        hook = _webhook(request, webhook_id)
        data = self.validated(WebhookUpdateInput, request.data)
        hook, new_secret = webhook_update(
            webhook=hook, url=data.get("url"), events=data.get("events"),
            session_id=_session_id(request, data) if "sessionId" in data else UNCHANGED,
            enabled=data.get("enabled"), description=data.get("description"),
            rotate_secret=data.get("rotateSecret", False), secret=data.get("secret"),
        )
        body = WebhookOutput(hook).data
        if new_secret:
            body["secret"] = new_secret
        return ok(body)

    @extend_schema(operation_id="webhooks_delete", summary="Delete a webhook",
                   responses={200: envelope(WebhookOutput)})
    def delete(self, request, webhook_id: str):
        hook = _webhook(request, webhook_id)
        webhook_delete(webhook=hook)
        return ok({**WebhookOutput(hook).data, "deleted": True})


class WebhookTestApi(ApiView):
    required_scopes = {"POST": WEBHOOKS_WRITE}
    error_codes = ("resource_not_found", "invalid_webhook_url", "webhook_url_unreachable",
                   "webhook_response_timeout")

    @extend_schema(operation_id="webhooks_test", summary="Send a signed webhook.test event now",
                   request=None, responses=envelope(TestResultOutput))
    def post(self, request, webhook_id: str):
        self.validated(InputSerializer, request.data or {})
        hook = _webhook(request, webhook_id)
        return ok(webhook_test(webhook=hook))


class DeliveryListApi(ApiView):
    required_scopes = {"GET": WEBHOOKS_READ}
    error_codes = ("resource_not_found",)

    @extend_schema(operation_id="webhooks_deliveries",
                   summary="The webhook's deliveries, newest first, with every attempt",
                   parameters=list_parameters(
                       OpenApiParameter("status", enum=DeliveryStatus.values),
                       OpenApiParameter("event", enum=[*EVENT_TYPES, TEST_EVENT])),
                   responses=envelope(DeliveryOutput, many=True))
    def get(self, request, webhook_id: str):
        hook = _webhook(request, webhook_id)
        page, next_cursor = paginate(
            request.query_params,
            Delivery.objects.filter(webhook=hook).select_related("event")
            .prefetch_related("attempt_log"),
            filters={"status": choice_filter("status", "status", DeliveryStatus.values),
                     "event": choice_filter("event__type", "event", (*EVENT_TYPES, TEST_EVENT))},
        )
        return ok(DeliveryOutput(page, many=True).data, pagination={"nextCursor": next_cursor})


def _delivery(request, webhook_id: str, delivery_id: str) -> Delivery:
    return delivery_get(account_id=request.auth.account_id, webhook_id=webhook_id,
                        delivery_id=delivery_id)


class DeliveryDetailApi(ApiView):
    required_scopes = {"GET": WEBHOOKS_READ}
    error_codes = ("resource_not_found",)

    @extend_schema(operation_id="webhooks_delivery_get", summary="A delivery and its attempts",
                   responses=envelope(DeliveryOutput))
    def get(self, request, webhook_id: str, delivery_id: str):
        return ok(DeliveryOutput(_delivery(request, webhook_id, delivery_id)).data)


class DeliveryRetryApi(ApiView):
    required_scopes = {"POST": WEBHOOKS_WRITE}
    error_codes = ("resource_not_found",)

    @extend_schema(operation_id="webhooks_delivery_retry",
                   summary="Deliver again now (replay)", request=None,
                   responses={202: envelope(DeliveryOutput)})
    def post(self, request, webhook_id: str, delivery_id: str):
        self.validated(InputSerializer, request.data or {})
        delivery = delivery_retry(delivery=_delivery(request, webhook_id, delivery_id))
        return ok(DeliveryOutput(delivery).data, status=202)


class EventFeedApi(ApiView):
    """What the webhooks deliver, to read instead: a receiver that was down reads what it
    missed from the last event it processed."""

    required_scopes = {"GET": WEBHOOKS_READ}
    error_codes = ("invalid_request",)

    @extend_schema(
        operation_id="events_list", summary="The account's events, oldest first, after one",
        parameters=[
            OpenApiParameter("after", str, description=(
                "an event id: the events after it (one no longer kept still marks its "
                "place); default: from the oldest kept")),
            OpenApiParameter("types", str, description="comma-separated event types"),
            OpenApiParameter("limit", int, description="1 to 100 (default 50)"),
        ],
        responses=envelope(EventOutput, many=True))
    def get(self, request):
        page, next_cursor = paginate(
            request.query_params, Event.objects.filter(account_id=request.auth.account_id),
            filters={"types": _types_filter}, oldest_first=True, cursor_param="after")
        return ok([json.loads(event_body(event)) for event in page],
                  pagination={"nextCursor": next_cursor})


def _types_filter(value: str) -> dict:
    types = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in types if name not in EVENT_TYPES]
    if not types or unknown:
        raise ApiError(E.invalid_request, field="types", reason=(
            f"Comma-separated event types among {', '.join(EVENT_TYPES)}."))
    return {"type__in": types}
