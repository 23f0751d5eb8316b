"""What the operators' dashboard shows. Every figure is one aggregate query, bounded in time
(a day, a week, the chart's two weeks) or to the rows a picture can show, so the page stays
fast on big tables."""

from datetime import UTC, datetime, time, timedelta

from django.db.models import Count, F, FloatField, Q
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from accounts.models import ApiErrorLog, DailyUsage, PlanChangeRequest, PlanChangeStatus
from accounts.quotas import utc_today
from console.charts import horizontal_bars, stacked_columns
from infra.ids import id_floor
from messaging.models import Message, MessageStatus
from sessions_app.engines.bus import get_event_bus
from sessions_app.models import Session, SessionStatus
from webhooks.models import Delivery, DeliveryStatus
from webhooks.selectors import webhooks_failing

CHART_DAYS = 14
ERROR_DAYS = 7
# The order statuses stack in, from the bottom: the ones that went well first.
CHART_STATUSES = ["read", "delivered", "sent", "received", "queued", "failed"]


def _messages_per_day(today) -> tuple[list, dict]:
    days = [today - timedelta(days=CHART_DAYS - 1 - i) for i in range(CHART_DAYS)]
    start = datetime.combine(days[0], time.min, tzinfo=UTC)
    rows = (Message.objects.filter(id__gte=id_floor("msg", start))  # the primary key's index
            .annotate(day=TruncDate("created_at")).values("day", "status")
            .annotate(n=Count("id")).values_list("day", "status", "n"))
    counts: dict = {}
    for day, status, n in rows:
        shown = "queued" if status == MessageStatus.SENDING else status  # as the API says
        counts[(day, shown)] = counts.get((day, shown), 0) + n
    return days, counts


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
    sessions = horizontal_bars([(status, session_counts.get(status, 0))
                                for status in SessionStatus.values])

    errors = horizontal_bars(list(
        ApiErrorLog.objects.filter(created_at__gte=now - timedelta(days=ERROR_DAYS))
        .values("code").annotate(n=Count("id")).order_by("-n").values_list("code", "n")[:12]
    ))
    days, per_day = _messages_per_day(utc_today())

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
        "error_days": ERROR_DAYS,
        "messages_chart": stacked_columns(days, CHART_STATUSES, per_day),
        "chart_days": CHART_DAYS,
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
