from django.contrib import admin

from api.errors import ApiError
from infra.admin import ActionsOnlyAdmin, RecordAdmin, asks_first
from sessions_app.models import EngineEventRecord, Group, LidMapping, Session, SessionStatusChange
from sessions_app.services import session_delete, session_restart


class SessionStatusChangeInline(admin.TabularInline):
    model = SessionStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ("created_at", "from_status", "to_status", "reason")
    fields = readonly_fields
    ordering = ("-created_at",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ActionsOnlyAdmin):
    list_display = ("status", "id", "account", "name", "last_error_code", "phone_number",
                    "engine", "created_at", "connected_at", "deleted_at")
    list_display_links = ("id",)
    list_filter = ("status", "last_error_code", "engine",
                   ("deleted_at", admin.EmptyFieldListFilter))
    search_fields = ("=id", "phone_number", "account__name", "=account__id", "name")
    list_select_related = ("account",)
    readonly_fields = [f.name for f in Session._meta.fields]
    inlines = (SessionStatusChangeInline,)
    actions = ("restart_sessions", "log_out_and_remove")
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False  # sessions are created through the API, which starts the engine

    @admin.action(description="Restart: reconnect now (a stored login resumes, otherwise a "
                               "new QR code)", permissions=["change"])
    def restart_sessions(self, request, queryset):
        done, refused = 0, []
        for session in queryset:
            try:
                session_restart(session=session,
                                reason=f"restarted by {request.user.get_username()}")
                done += 1
            except ApiError as error:
                refused.append(f"{session.id}: {error.message}")
        self.message_user(request, f"Restarted {done} session(s).")
        if refused:
            self.message_user(request, "Not restarted: " + "; ".join(refused), level="warning")

    @admin.action(description="Log out and remove the selected sessions",
                  permissions=["change"])
    @asks_first("These sessions will be logged out of WhatsApp and removed: their owners must "
                "scan a new QR code to connect the numbers again.")
    def log_out_and_remove(self, request, queryset):
        for session in queryset:
            session_delete(session=session)
        self.message_user(request, f"Logged out {queryset.count()} session(s).")


@admin.register(EngineEventRecord)
class EngineEventRecordAdmin(RecordAdmin):
    """The embedded mode's event bus: what engines reported and whether it was applied."""

    list_display = ("id", "session_id", "event_type", "occurred_at", "processed_at")
    list_filter = (("processed_at", admin.EmptyFieldListFilter),)
    search_fields = ("=session_id",)

    @admin.display(description="type")
    def event_type(self, obj: EngineEventRecord) -> str:
        return obj.payload.get("type", "")


@admin.register(Group)
class GroupAdmin(RecordAdmin):
    """The groups each session is in (or left), as WhatsApp last reported them."""

    list_display = ("subject", "group_id", "session", "members", "left_at", "updated_at")
    list_filter = (("left_at", admin.EmptyFieldListFilter),)
    search_fields = ("=group_id", "subject", "=session__id", "session__account__name")
    list_select_related = ("session",)
    readonly_fields = ("session", "group_id", "subject", "description", "member_list",
                       "left_at", "created_at", "updated_at")
    fields = readonly_fields

    @admin.display(description="members")
    def members(self, obj: Group) -> int:
        return len(obj.participants)

    @admin.display(description="members")
    def member_list(self, obj: Group) -> str:
        return ", ".join(
            f"{member.get('phoneNumber') or member['id']}{' (admin)' if member['isAdmin'] else ''}"
            for member in obj.participants)


@admin.register(LidMapping)
class LidMappingAdmin(RecordAdmin):
    """Whose number each hidden id (@lid) is, as WhatsApp disclosed it to a session."""

    list_display = ("lid", "phone_number", "session", "learned_at")
    search_fields = ("=lid", "phone_number", "=session__id")
    list_select_related = ("session",)
    readonly_fields = ("session", "lid", "phone_number", "learned_at")
    fields = readonly_fields
