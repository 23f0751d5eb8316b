"""What the apps' admin classes share."""

import functools
from collections.abc import Callable

from django.contrib import admin
from django.template.response import TemplateResponse


class ActionsOnlyAdmin(admin.ModelAdmin):
    """Rows that change only through actions calling the services (a restart, a redelivery):
    their page is for reading, with no Save buttons and no delete (deleting a session's row
    would skip logging it out, for one)."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"show_save": False, "show_save_and_continue": False,
                 "show_save_and_add_another": False, "show_delete": False,
                 **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RecordAdmin(admin.ModelAdmin):
    """Records of what happened (logs, what an engine reported, a message and its history):
    support reads, filters and searches them; nobody adds, edits or deletes one here."""

    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def asks_first(consequence: str) -> Callable:
    """For an irreversible admin action, as Django's own delete does: the first post answers a
    page naming the selected rows and `consequence`; its "Yes" posts again, and only then does
    the action run."""
    def decorate(action: Callable) -> Callable:
        @functools.wraps(action)
        def ask_then_act(model_admin: admin.ModelAdmin, request, queryset):
            if request.POST.get("confirmed") == "yes":
                return action(model_admin, request, queryset)
            return TemplateResponse(request, "admin/confirm_action.html", {
                **model_admin.admin_site.each_context(request),
                "title": "Are you sure?", "opts": model_admin.model._meta,
                "action": action.__name__, "consequence": consequence,
                "objects": queryset[:100], "count": queryset.count(),
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                "selected": list(queryset.values_list("pk", flat=True)),
            })
        return ask_then_act
    return decorate
