from django.contrib import admin

from messaging.models import Message, MessageStatusChange


class MessageStatusChangeInline(admin.TabularInline):
    model = MessageStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "status", "detail")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "account", "session", "direction", "type", "to_number", "from_number",
                    "status", "error_code", "created_at")
    list_filter = ("status", "direction", "type", "error_code")
    search_fields = ("=id", "=whatsapp_id", "to_number", "from_number", "=request_id",
                     "=session__id", "account__name")
    list_select_related = ("account", "session")
    readonly_fields = [f.name for f in Message._meta.fields]
    inlines = (MessageStatusChangeInline,)
    show_full_result_count = False
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
