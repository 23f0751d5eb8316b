from django import forms
from django.contrib import admin, messages
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db.models import IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts.models import (
    Account,
    ApiErrorLog,
    ApiKey,
    DailyUsage,
    Invitation,
    Membership,
    Plan,
    PlanChangeRequest,
)
from accounts.quotas import utc_today
from accounts.scopes import ALL_SCOPES
from accounts.services import (
    MemberError,
    account_change_plan,
    api_key_create,
    api_key_revoke,
    email_in_use,
    invitation_create,
    member_create,
    plan_change_request_decide,
)
from infra.admin import RecordAdmin, asks_first


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
        "name", "id", "plan", "is_active", "messages_today", "daily_limit", "customer_page",
        "created_at"
    )
    list_filter = ("plan", "is_active")
    search_fields = ("name", "id")
    list_select_related = ("plan",)
    readonly_fields = ("id", "customer_page", "created_at")
    actions = ("change_plan",)

    @admin.action(description="Change the plan of the selected accounts",
                  permissions=["change"])
    def change_plan(self, request, queryset):
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

    @admin.display(description="support")
    def customer_page(self, obj: Account) -> str:
        # The page of everything about one customer (console.customer), by its URL's name.
        return format_html('<a href="{}">Everything about {}</a>',
                           reverse("admin:customer", args=[obj.pk]), obj.name)

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
    @asks_first("These keys will stop working at once, for good: every request signed with "
                "them is refused from now on.")
    def revoke_keys(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(ApiErrorLog)
class ApiErrorLogAdmin(RecordAdmin):
    list_display = ("created_at", "status", "code", "method", "path", "account", "key_prefix",
                    "request_id")
    list_filter = ("code", "status", "account")
    search_fields = ("=request_id", "=key_prefix", "account__name", "path")
    list_select_related = ("account",)
    date_hierarchy = "created_at"  # ERROR_LOG_RETENTION_DAYS forgets old entries


# --- customer users --------------------------------------------------------------------------


class MembershipCreateForm(forms.ModelForm):
    """An operator creates a customer user: email, account, role and a first password (or
    none: the user then sets one through "Forgot your password?")."""

    email = forms.EmailField()
    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="Leave empty to let the user set it by email reset.")

    class Meta:
        model = Membership
        fields = ("account", "role")

    def clean_email(self) -> str:
        return _unused_email(self.cleaned_data["email"])

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if password:
            validate_password(password)
        return password


def _unused_email(email: str) -> str:
    if email_in_use(email):
        raise ValidationError("A user with this email address already exists.")
    return email


class InvitationForm(forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ("account", "email", "role")

    def clean_email(self) -> str:
        return _unused_email(self.cleaned_data["email"])


class _AdminRefusal(Exception):
    """A service refused what the add form allowed (a race with another create)."""

    def __init__(self, cause: Exception) -> None:
        text = "; ".join(cause.messages) if isinstance(cause, ValidationError) else str(cause)
        super().__init__(text)


class _RefusalOnAddMixin:
    """save_model raises _AdminRefusal; the add page then says why, and nothing is saved (the
    admin's transaction rolls back)."""

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except _AdminRefusal as refusal:
            messages.error(request, f"Not saved: {refusal}")
            return redirect(request.path)


@admin.register(Membership)
class MembershipAdmin(_RefusalOnAddMixin, admin.ModelAdmin):
    list_display = ("user_email", "account", "role", "last_login", "created_at")
    list_filter = ("role", "account__plan")
    search_fields = ("user__email", "account__name", "account__id")
    list_select_related = ("user", "account")
    readonly_fields = ("user", "created_at")
    fields = ("user", "account", "role", "created_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MembershipCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("email", "password", "account", "role") if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            user = member_create(account=form.cleaned_data["account"],
                                 email=form.cleaned_data["email"],
                                 password=form.cleaned_data["password"] or None,
                                 role=form.cleaned_data["role"])
        except (MemberError, ValidationError) as refused:
            # Too late for form errors here; the add page's response says what went wrong.
            raise _AdminRefusal(refused) from refused
        obj.pk = user.membership.pk
        obj.refresh_from_db()

    @admin.display(description="email", ordering="user__email")
    def user_email(self, obj: Membership) -> str:
        return obj.user.email

    @admin.display(description="last sign-in", ordering="user__last_login")
    def last_login(self, obj: Membership):
        return obj.user.last_login




@admin.register(Invitation)
class InvitationAdmin(_RefusalOnAddMixin, admin.ModelAdmin):
    """Adding an invitation emails its link (and shows it once, for when email is not set
    up)."""

    list_display = ("email", "account", "role", "invited_by", "created_at", "expires_at",
                    "accepted_at")
    list_filter = ("role", "accepted_at")
    search_fields = ("email", "account__name", "account__id")
    list_select_related = ("account", "invited_by")
    form = InvitationForm
    fields = ("account", "email", "role")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        accept_url = request.build_absolute_uri(
            reverse("dashboard:invitation", args=["TOKEN"])).replace("TOKEN", "{token}")
        try:
            invitation, link = invitation_create(
                account=form.cleaned_data["account"], email=form.cleaned_data["email"],
                role=form.cleaned_data["role"], invited_by=request.user, accept_url=accept_url)
        except MemberError as refused:
            raise _AdminRefusal(refused) from refused
        obj.pk = invitation.pk
        obj.refresh_from_db()
        messages.warning(request, f"Invitation emailed. Its link (shown only once): {link}")


@admin.register(PlanChangeRequest)
class PlanChangeRequestAdmin(admin.ModelAdmin):
    """Customers' upgrade (or downgrade) requests; approving one changes the account's plan."""

    list_display = ("account", "current_plan", "requested_plan", "status", "requested_by",
                    "created_at", "decided_at", "decided_by")
    list_filter = ("status", "requested_plan")
    search_fields = ("account__name", "account__id", "requested_by__email")
    list_select_related = ("account", "current_plan", "requested_plan", "requested_by",
                           "decided_by")
    readonly_fields = ("account", "current_plan", "requested_plan", "note", "requested_by",
                       "status", "created_at", "decided_at", "decided_by")
    actions = ("approve", "decline")

    def has_add_permission(self, request) -> bool:
        return False

    def _decide(self, request, queryset, approve: bool) -> None:
        done = 0
        for plan_request in queryset:
            try:
                plan_change_request_decide(request=plan_request, approve=approve,
                                           operator=request.user)
                done += 1
            except MemberError as refused:
                messages.warning(request, f"{plan_request}: {refused}")
        self.message_user(request, f"{'Approved' if approve else 'Declined'} {done} "
                                   f"request(s).")

    @admin.action(description="Approve: move the accounts to the requested plans",
                  permissions=["change"])
    def approve(self, request, queryset):
        self._decide(request, queryset, approve=True)

    @admin.action(description="Decline the selected requests", permissions=["change"])
    def decline(self, request, queryset):
        self._decide(request, queryset, approve=False)
