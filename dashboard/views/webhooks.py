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
from sessions_app.selectors import session_get, sessions_visible
from webhooks.models import Delivery, DeliveryStatus, Webhook
from webhooks.outbox import event_body
from webhooks.selectors import delivery_get, webhook_get, webhooks_visible
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
            return render(request, "dashboard/webhook_created.html",
                          {"nav": "webhooks", "webhook": hook})
    hooks = webhooks_visible(account_id=request.account.id)
    return render(request, "dashboard/webhooks.html", {
        "nav": "webhooks", "form": form, "webhooks": hooks, "error": error,
    }, status=error["status"] if error else 200)


@member_view()
def webhook_detail(request: HttpRequest, webhook_id: str) -> HttpResponse:
    hook = _webhook(request, webhook_id)
    status = request.GET.get("status", "")
    deliveries = newest_first(Delivery.objects.filter(webhook=hook).select_related("event")
                              .prefetch_related("attempt_log"))
    if status in DeliveryStatus.values:
        deliveries = deliveries.filter(status=status)
    return render(request, "dashboard/webhook.html", {
        "nav": "webhooks", "webhook": hook, "deliveries": deliveries[:50],
        "status_filter": status, "statuses": DeliveryStatus.values,
    })


@allow_methods("POST")
@member_view()
def webhook_test_view(request: HttpRequest, webhook_id: str) -> HttpResponse:
    hook = _webhook(request, webhook_id)
    try:
        result = webhook_test(webhook=hook)
    except ApiError as failure:
        return render(request, "dashboard/webhook_tested.html",
                      {"nav": "webhooks", "webhook": hook, "error": error_context(failure)},
                      status=failure.status_code)
    return render(request, "dashboard/webhook_tested.html",
                  {"nav": "webhooks", "webhook": hook, "result": result})


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
