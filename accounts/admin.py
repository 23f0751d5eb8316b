from django import forms
from django.contrib import admin, messages
from django.db.models import IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce

from accounts.models import Account, ApiErrorLog, ApiKey, DailyUsage, Plan
from accounts.quotas import utc_today
from accounts.scopes import ALL_SCOPES
from accounts.services import account_change_plan, api_key_create, api_key_revoke


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "max_sessions",
        "daily_message_limit",
        "rate_limit_per_minute",
        "max_concurrent_requests",
        "updated_at",
    )
    search_fields = ("name",)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = (
        "name", "id", "plan", "is_active", "messages_today", "daily_limit", "created_at"
    )
    list_filter = ("plan", "is_active")
    search_fields = ("name", "id")
    list_select_related = ("plan",)
    readonly_fields = ("id", "created_at")
    actions = ("change_plan",)

    @admin.action(description="Change the plan of the selected accounts",
                  permissions=["change"])
    def change_plan(self, request, queryset):
        from django.template.response import TemplateResponse

        form = ChangePlanForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            for account in queryset:
                account_change_plan(account=account, plan=form.cleaned_data["plan"])
            self.message_user(request, f"Moved {queryset.count()} account(s) to "
                                       f"{form.cleaned_data['plan']}.")
            return None
        return TemplateResponse(request, "admin/accounts/change_plan.html", {
            **self.admin_site.each_context(request), "title": "Change plan", "form": form,
            "accounts": queryset, "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    def get_queryset(self, request):
        today = DailyUsage.objects.filter(account=OuterRef("pk"), day=utc_today())
        return (
            super()
            .get_queryset(request)
            .annotate(
                _messages_today=Coalesce(
                    Subquery(today.values("messages")[:1]), 0, output_field=IntegerField()
                )
            )
        )

    @admin.display(description="messages today", ordering="_messages_today")
    def messages_today(self, obj: Account) -> int:
        return obj._messages_today

    @admin.display(description="daily limit")
    def daily_limit(self, obj: Account) -> int:
        return obj.plan.daily_message_limit


class ChangePlanForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.all())


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in ALL_SCOPES],
        initial=list(ALL_SCOPES),
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = ApiKey
        fields = ("account", "name", "scopes", "expires_at")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "account", "scope_list", "expires_at", "revoked_at",
                    "last_used_at", "created_at")
    list_filter = ("revoked_at", "account__plan")
    search_fields = ("prefix", "name", "account__name", "account__id")
    list_select_related = ("account",)
    actions = ("revoke_keys",)
    readonly_fields = ("id", "prefix", "account", "scopes", "revoked_at", "last_used_at",
                       "created_at")
    fields = ("id", "prefix", "account", "name", "scopes", "expires_at", "revoked_at",
              "last_used_at", "created_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ApiKeyCreateForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = api_key_create(
            account=form.cleaned_data["account"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data["expires_at"],
        )
        obj.pk = key.pk
        obj.refresh_from_db()
        messages.warning(
            request, f"New API key (shown only once, copy it now): {raw}"
        )

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(ApiErrorLog)
class ApiErrorLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "status", "code", "method", "path", "account", "key_prefix",
                    "request_id")
    list_filter = ("code", "status", "account")
    search_fields = ("=request_id", "=key_prefix", "account__name", "path")
    list_select_related = ("account",)
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser
