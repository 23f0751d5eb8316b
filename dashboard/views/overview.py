"""The overview: plan, today's usage against the limit, sessions by status, recent failures."""

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import account_usage
from api.errors import CATALOGUE
from dashboard.access import member_view
from messaging.models import Message, MessageStatus
from sessions_app.selectors import sessions_visible
from webhooks.models import Delivery, DeliveryStatus
from webhooks.selectors import webhook_health, webhooks_failing


@member_view()
def overview(request: HttpRequest) -> HttpResponse:
    account = request.account
    usage = account_usage(account=account)
    limit = account.plan.daily_message_limit
    by_status = dict(sessions_visible(account_id=account.id).values("status")
                     .annotate(n=Count("id")).values_list("status", "n"))
    failed_messages = list(Message.objects.filter(account=account, status=MessageStatus.FAILED)
                           .select_related("session").order_by("-id")[:10])
    for message in failed_messages:
        message.catalogue = CATALOGUE.get(message.error_code)
    failing_webhooks = list(webhooks_failing().filter(account=account).order_by("failing_since"))
    for hook in failing_webhooks:
        hook.health = webhook_health(hook)
    failed_deliveries = list(
        Delivery.objects.filter(webhook__account=account, webhook__deleted_at__isnull=True,
                                status=DeliveryStatus.FAILED)
        .select_related("event", "webhook").order_by("-created_at")[:10])
    return render(request, "dashboard/overview.html", {
        "nav": "overview",
        "usage": usage,
        "limit": limit,
        "usage_percent": min(100, round(usage["messagesToday"] * 100 / limit)) if limit else 100,
        "sessions_by_status": sorted(by_status.items()),
        "failed_messages": failed_messages,
        "failed_deliveries": failed_deliveries,
        "failing_webhooks": failing_webhooks,
    })
