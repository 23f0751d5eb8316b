from django.contrib import admin

from webhooks.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "account", "session_id", "created_at")
    list_filter = ("type",)
    search_fields = ("=id", "=session_id", "account__name")
    list_select_related = ("account",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
