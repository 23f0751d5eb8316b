"""Support's page of one customer: everything about an account on one page (its plan and
usage, keys, sessions, recent errors, failing webhooks and failed messages), read-only."""

from collections.abc import Callable
from datetime import timedelta

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import Account, ApiErrorLog, ApiKey, Membership
from accounts.selectors import account_usage
from messaging.models import Message, MessageStatus
from sessions_app.models import Session
from webhooks.selectors import webhook_health, webhooks_visible

RECENT = 20


def customer_view(admin_site: admin.AdminSite) -> Callable[..., HttpResponse]:
    """The page's view, for `admin_site.admin_view` (which lets only staff in)."""

    def view(request: HttpRequest, account_id: str) -> HttpResponse:
        if not request.user.has_perm("accounts.view_account"):
            raise Http404
        account = Account.objects.select_related("plan").filter(pk=account_id).first()
        if account is None:
            raise Http404("No such account.")
        since = timezone.now() - timedelta(days=7)
        webhooks = list(webhooks_visible(account_id=account.id).order_by("-failing_since"))
        for hook in webhooks:
            hook.health = webhook_health(hook)
        return TemplateResponse(request, "admin/customer.html", {
            **admin_site.each_context(request),
            "title": f"Customer: {account.name}",
            "account": account,
            "usage": account_usage(account=account),
            "members": Membership.objects.filter(account=account).select_related("user"),
            "keys": ApiKey.objects.filter(account=account).order_by("-created_at"),
            "sessions": Session.objects.filter(account=account).order_by("-created_at"),
            "errors": ApiErrorLog.objects.filter(account=account, created_at__gte=since)
            .order_by("-created_at")[:RECENT],
            "webhooks": webhooks,
            "failed_messages": Message.objects.filter(
                account=account, status=MessageStatus.FAILED, failed_at__gte=since)
            .select_related("session").order_by("-failed_at")[:RECENT],
        })

    return view
