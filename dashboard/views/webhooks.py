"""Webhooks: register (with the API's checks and codes), test, enable, delete; deliveries
with their attempts, and redelivery."""

import json

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from api.errors import ApiError, E
from api.pagination import newest_first
from dashboard.access import allow_methods, error_context, member_view, render_error
from dashboard.forms import WebhookCreateForm
from dashboard.results import result_keep, result_read
from sessions_app.selectors import session_get, sessions_visible
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.outbox import event_body
from webhooks.selectors import delivery_get, webhook_get, webhook_health, webhooks_visible
from webhooks.services import (
    delivery_retry,
    webhook_create,
    webhook_delete,
    webhook_test,
    webhook_update,
)


def _webhook(request: HttpRequest, webhook_id: str) -> Webhook:
    return webhook_get(account_id=request.account.id, webhook_id=webhook_id)


@never_cache
@member_view()
def webhook_list(request: HttpRequest) -> HttpResponse:
    sessions = sessions_visible(account_id=request.account.id)
    form = WebhookCreateForm(request.POST if request.method == "POST" else None, sessions=sessions)
    error = None
    if request.method == "POST":
        # The service checks URL and events exactly as the API does (same codes).
        url = request.POST.get("url", "").strip()
        session_id = request.POST.get("session") or None
        try:
            if any("\x00" in value for values in request.POST.lists() for value in values[1]):
                raise ApiError(E.invalid_request, reason="Null characters are not allowed.")
            if session_id:
                session_get(account_id=request.account.id, session_id=session_id)
            hook = webhook_create(account_id=request.account.id, url=url,
                                  events=request.POST.getlist("events"), session_id=session_id,
                                  secret=None,
                                  description=request.POST.get("description", "")[:200])
        except ApiError as failure:
            error = error_context(failure)
        else:
            token = result_keep(request, {"webhook_id": hook.id, "secret": hook.secret})
            return redirect("dashboard:webhook_created", token=token)
    hooks = list(webhooks_visible(account_id=request.account.id))
    for hook in hooks:
        hook.health = webhook_health(hook)
    return render(request, "dashboard/webhooks.html", {
        "nav": "webhooks", "form": form, "webhooks": hooks, "error": error,
    }, status=error["status"] if error else 200)


@never_cache
@allow_methods("GET")
@member_view()
def webhook_created(request: HttpRequest, token: str) -> HttpResponse:
    """The new webhook's signing secret, shown once: a reload finds it gone."""
    shown = result_read(request, token, once=True)
    hook = (webhooks_visible(account_id=request.account.id).filter(pk=shown["webhook_id"])
            .first() if shown else None)
    return render(request, "dashboard/webhook_created.html", {
        "nav": "webhooks", "webhook": hook, "secret": shown["secret"] if hook else None},
        status=200 if hook else 410)


@member_view()
def webhook_detail(request: HttpRequest, webhook_id: str) -> HttpResponse:
    hook = _webhook(request, webhook_id)
    status = request.GET.get("status", "")
    deliveries = newest_first(Delivery.objects.filter(webhook=hook).select_related("event")
                              .prefetch_related("attempt_log"))
    if status in DeliveryStatus.values:
        deliveries = deliveries.filter(status=status)
    return render(request, "dashboard/webhook.html", {
        "nav": "webhooks", "webhook": hook, "health": webhook_health(hook),
        "deliveries": deliveries[:50],
        "status_filter": status, "statuses": DeliveryStatus.values,
    })


@allow_methods("POST")
@member_view()
def webhook_test_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    hook = _webhook(request, webhook_id)
    try:
        outcome = {"result": webhook_test(webhook=hook)}
    except ApiError as failure:
        outcome = {"error": error_context(failure)}
    token = result_keep(request, outcome)
    return redirect("dashboard:webhook_tested", webhook_id=hook.id, token=token)


@allow_methods("GET")
@member_view()
def webhook_tested(request: HttpRequest, webhook_id: str, token: str) -> HttpResponse:
    """The test's outcome; a reload shows it again without sending another test event."""
    hook = _webhook(request, webhook_id)
    outcome = result_read(request, token)
    if outcome is None:
        return redirect("dashboard:webhook", webhook_id=hook.id)
    error = outcome.get("error")
    return render(request, "dashboard/webhook_tested.html",
                  {"nav": "webhooks", "webhook": hook, **outcome},
                  status=error["status"] if error else 200)


@allow_methods("POST")
@member_view()
def webhook_enable_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    hook = _webhook(request, webhook_id)
    webhook_update(webhook=hook, enabled=request.POST.get("enabled") == "true")
    return redirect("dashboard:webhook", webhook_id=hook.id)


@allow_methods("POST")
@member_view()
def webhook_delete_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    webhook_delete(webhook=_webhook(request, webhook_id))
    return redirect("dashboard:webhooks")


def _delivery(request: HttpRequest, webhook_id: str, delivery_id: str) -> Delivery:
    return delivery_get(account_id=request.account.id, webhook_id=webhook_id,
                        delivery_id=delivery_id)


@member_view()
def delivery_detail(request: HttpRequest, webhook_id: str, delivery_id: str) -> HttpResponse:
    delivery = _delivery(request, webhook_id, delivery_id)
    return render(request, "dashboard/delivery.html", {
        "nav": "webhooks", "delivery": delivery, "webhook": delivery.webhook,
        "attempts": delivery.attempt_log.order_by("-attempted_at"),
        # What is posted (signed as compact JSON), indented for reading.
        "body": json.dumps(json.loads(event_body(delivery.event)), indent=2),
        "redelivered": request.GET.get("redelivered") == "1",
    })


@allow_methods("POST")
@member_view()
def delivery_redeliver(request: HttpRequest, webhook_id: str, delivery_id: str
                       ) -> HttpResponse:
    delivery = _delivery(request, webhook_id, delivery_id)
    if not delivery.webhook.is_active:
        return render_error(request, E.invalid_request,
                            reason="The webhook is disabled; enable it to deliver again.")
    delivery_retry(delivery=delivery)
    return redirect(reverse("dashboard:delivery", args=[webhook_id, delivery.id])
                    + "?redelivered=1")
