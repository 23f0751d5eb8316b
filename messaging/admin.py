from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.models import ApiErrorLog
from api.errors import ApiError
from infra.admin import RecordAdmin, asks_first
from messaging.models import Chat, Message, MessageStatusChange
from messaging.services import message_cancel, message_retry


class MessageStatusChangeInline(admin.TabularInline):
    model = MessageStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "status", "detail")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(RecordAdmin):
    # Status first: it is what support looks for, and it stays on screen when the row is wide.
    list_display = ("status", "id", "account", "session", "direction", "type", "to_number",
                    "from_number", "error_code", "created_at")
    list_display_links = ("id",)
    list_filter = ("status", "direction", "type", "error_code")
    search_fields = ("=id", "=whatsapp_id", "to_number", "from_number", "=request_id",
                     "=session__id", "account__name")
    list_select_related = ("account", "session")
    readonly_fields = ["support_links", *[f.name for f in Message._meta.fields]]
    inlines = (MessageStatusChangeInline,)
    date_hierarchy = "created_at"
    actions = ("retry_failed", "cancel_queued")

    def has_retry_permission(self, request) -> bool:
        return request.user.has_perm("messaging.change_message")

    @admin.display(description="support")
    def support_links(self, obj: Message) -> str:
        """Everything support needs about this message, one click away."""
        links = [
            ("Session", reverse("admin:sessions_app_session_change", args=[obj.session_id])),
            ("Account", reverse("admin:accounts_account_change", args=[obj.account_id])),
            ("Webhook deliveries",
             reverse("admin:webhooks_delivery_changelist") + f"?event__data__id={obj.id}"),
            ("Events", reverse("admin:webhooks_event_changelist") + f"?data__id={obj.id}"),
        ]
        # Only a request that was refused left an error log: a message accepted, then failed,
        # has none, and a link to an empty list would say nothing.
        if obj.request_id and ApiErrorLog.objects.filter(request_id=obj.request_id).exists():
            links.insert(2, ("Error log for its request",
                             reverse("admin:accounts_apierrorlog_changelist")
                             + f"?request_id={obj.request_id}"))
        links.insert(2, ("Customer", reverse("admin:customer", args=[obj.account_id])))
        return format_html_join(" · ", '<a href="{}">{}</a>',
                                ((url, label) for label, url in links)) or format_html("")

    @admin.action(description="Retry the selected failed messages", permissions=["retry"])
    def retry_failed(self, request, queryset):
        retried = sum(message_retry(message=m) for m in queryset.filter(status="failed"))
        self.message_user(request, f"Queued {retried} failed message(s) again.")

    @admin.action(description="Cancel the selected queued messages", permissions=["retry"])
    @asks_first("The selected messages that are still queued will not be sent: they fail "
                "with message_canceled (the others are left as they are).")
    def cancel_queued(self, request, queryset):
        canceled = 0
        for message in queryset.filter(status="queued", direction="outbound"):
            try:
                message_cancel(account_id=message.account_id, message_id=message.pk)
                canceled += 1
            except ApiError:  # taken by a sender meanwhile: it is being sent
                pass
        self.message_user(request, f"Canceled {canceled} queued message(s).")


@admin.register(Chat)
class ChatAdmin(RecordAdmin):
    """Each session's conversations: read-only, they follow the messages."""

    list_display = ("chat_id", "name", "is_group", "session", "unread_count", "last_message")
    list_filter = ("is_group",)
    search_fields = ("=chat_id", "name", "=session__id", "account__name")
    list_select_related = ("session",)
    readonly_fields = ("account", "session", "chat_id", "is_group", "name", "last_message",
                       "unread_count")
    fields = readonly_fields
