from django.contrib import admin

from infra.admin import ActionsOnlyAdmin, RecordAdmin
from webhooks.models import Delivery, DeliveryAttempt, Event, Webhook
from webhooks.selectors import webhook_health
from webhooks.services import delivery_retry, webhook_disable, webhook_update


@admin.register(Event)
class EventAdmin(RecordAdmin):
    list_display = ("id", "type", "account", "session_id", "created_at")
    list_filter = ("type",)
    search_fields = ("=id", "=session_id", "account__name")
    list_select_related = ("account",)

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        return lookup == "data__id" or super().lookup_allowed(lookup, value, request)


@admin.register(Webhook)
class WebhookAdmin(ActionsOnlyAdmin):
    list_display = ("health", "id", "account", "url", "consecutive_failures", "failing_since",
                    "last_failure_error", "created_at")
    list_display_links = ("id",)
    list_filter = ("is_active", ("failing_since", admin.EmptyFieldListFilter),
                   ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("=id", "url", "account__name", "=account__id")
    list_select_related = ("account",)
    exclude = ("secret", "previous_secret")  # never shown, not even to operators
    readonly_fields = ("id", "account", "url", "events", "session", "is_active",
                       "disabled_reason", "disabled_at", "failing_since",
                       "consecutive_failures", "last_failure_at", "last_failure_error",
                       "last_failure_status", "last_failure_response", "failure_notified_at",
                       "previous_secret_expires_at", "delivery_lease_owner",
                       "delivery_lease_until", "created_at", "updated_at", "deleted_at",
                       "description")
    actions = ("disable_webhooks", "enable_webhooks")

    def has_add_permission(self, request) -> bool:
        return False  # registration sends a test event: customers use the API

    @admin.display(description="health")
    def health(self, obj: Webhook) -> str:
        return webhook_health(obj)["state"]

    @admin.action(description="Disable the selected webhooks", permissions=["change"])
    def disable_webhooks(self, request, queryset):
        for hook in queryset:
            webhook_disable(webhook_id=hook.id,
                            reason=f"disabled by operator {request.user.get_username()}")
        self.message_user(request, f"Disabled {queryset.count()} webhook(s).")

    @admin.action(description="Enable the selected webhooks", permissions=["change"])
    def enable_webhooks(self, request, queryset):
        for hook in queryset:
            webhook_update(webhook=hook, enabled=True)
        self.message_user(request, f"Enabled {queryset.count()} webhook(s).")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("attempted_at", "status_code", "latency_ms", "response_snippet", "error")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ActionsOnlyAdmin):
    list_display = ("status", "id", "webhook", "event_type", "attempts", "last_status_code",
                    "next_attempt_at", "created_at")
    list_display_links = ("id",)
    list_filter = ("status", "event__type")
    search_fields = ("=id", "=event__id", "=webhook__id", "webhook__account__name")
    list_select_related = ("webhook", "event")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = (DeliveryAttemptInline,)
    actions = ("redeliver",)
    show_full_result_count = False

    @admin.display(description="event")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.type

    def has_add_permission(self, request) -> bool:
        return False

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        # Support's link from a message to the deliveries of its events.
        return lookup == "event__data__id" or super().lookup_allowed(lookup, value, request)

    @admin.action(description="Deliver the selected again now", permissions=["change"])
    def redeliver(self, request, queryset):
        for delivery in queryset:
            delivery_retry(delivery=delivery)
        self.message_user(request, f"Queued {queryset.count()} delivery(ies) again.")
