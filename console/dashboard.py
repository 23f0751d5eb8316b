"""What the operators' dashboard shows. Every figure is one aggregate query, bounded to a day
or to the rows a picture can show, so the page stays fast on big tables."""

from datetime import timedelta

from django.db.models import Count, F, FloatField, Q
from django.db.models.functions import Cast, TruncHour
from django.utils import timezone

from accounts.models import ApiErrorLog, DailyUsage, PlanChangeRequest, PlanChangeStatus
from accounts.quotas import utc_today
from messaging.models import Message, MessageStatus
from sessions_app.engines.bus import get_event_bus
from sessions_app.models import Session, SessionStatus
from webhooks.models import Delivery, DeliveryStatus
from webhooks.selectors import webhooks_failing


def _bars(rows: list[tuple[str, int]]) -> list[dict]:
    top = max((value for _, value in rows), default=0) or 1
    return [{"label": label, "value": value, "percent": round(100 * value / top)}
            for label, value in rows]


def _sparkline(counts: list[int], width: int = 240, height: int = 40) -> str:
    """SVG polyline points for hourly counts."""
    top = max(counts, default=0) or 1
    step = width / max(len(counts) - 1, 1)
    return " ".join(f"{i * step:.1f},{height - (height - 2) * c / top:.1f}"
                    for i, c in enumerate(counts))


def dashboard_context() -> dict:
    now = timezone.now()
    since = now - timedelta(hours=24)

    quota_rows = (
        DailyUsage.objects.filter(day=utc_today())
        .select_related("account__plan")
        .annotate(ratio=Cast(F("messages"), FloatField())
                  / Cast(F("account__plan__daily_message_limit"), FloatField()))
        .order_by("-ratio")[:15]
    )
    quotas = [{"account": u.account, "used": u.messages,
               "limit": u.account.plan.daily_message_limit,
               "percent": min(100, round(100 * (u.ratio or 0)))} for u in quota_rows]

    session_counts = dict(
        Session.objects.filter(deleted_at__isnull=True).values_list("status")
        .annotate(n=Count("id")).values_list("status", "n")
    )
    sessions = _bars([(status, session_counts.get(status, 0))
                      for status in SessionStatus.values])

    errors = _bars(list(
        ApiErrorLog.objects.filter(created_at__gte=since).values("code")
        .annotate(n=Count("id")).order_by("-n").values_list("code", "n")[:12]
    ))

    hourly = dict(
        Message.objects.filter(created_at__gte=since, direction="outbound")
        .annotate(hour=TruncHour("created_at")).values("hour").annotate(n=Count("id"))
        .values_list("hour", "n")
    )
    start_hour = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    hours = [start_hour + timedelta(hours=i) for i in range(24)]
    per_hour = [hourly.get(hour, 0) for hour in hours]

    failed_messages = (Message.objects.filter(status=MessageStatus.FAILED, failed_at__gte=since)
                       .select_related("account").order_by("-failed_at"))
    failed_deliveries = (Delivery.objects.filter(status=DeliveryStatus.FAILED,
                                                 last_attempt_at__gte=since)
                         .select_related("webhook__account", "event")
                         .order_by("-last_attempt_at"))
    queue = Message.objects.aggregate(
        queued=Count("id", filter=Q(status__in=[MessageStatus.QUEUED, MessageStatus.SENDING])),
    )
    pending_deliveries = Delivery.objects.filter(status=DeliveryStatus.PENDING).count()
    failing = webhooks_failing().select_related("account").order_by("failing_since")
    return {
        "quotas": quotas,
        "sessions": sessions,
        "errors": errors,
        "messages_per_hour": per_hour,
        "messages_24h": sum(per_hour),
        "sparkline": _sparkline(per_hour),
        "failed_messages": list(failed_messages[:10]),
        "failed_messages_count": failed_messages.count(),
        "failed_deliveries": list(failed_deliveries[:10]),
        "failed_deliveries_count": failed_deliveries.count(),
        "failing_webhooks": list(failing[:10]),
        "failing_webhooks_count": failing.count(),
        "queued_messages": queue["queued"],
        "pending_deliveries": pending_deliveries,
        "engine_events_pending": _engine_events_pending(),
        "open_plan_requests": PlanChangeRequest.objects.filter(
            status=PlanChangeStatus.OPEN).count(),
    }


def _engine_events_pending() -> int | None:
    try:
        return get_event_bus().pending_count()
    except Exception:  # a dashboard must render even when Redis is down
        return None
