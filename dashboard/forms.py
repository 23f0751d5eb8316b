"""The dashboard's forms: they check shapes; the services check the rest."""

from datetime import timedelta

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from accounts.models import Membership, Plan
from accounts.scopes import ALL_SCOPES
from webhooks.outbox import EVENT_TYPES


class SignInForm(AuthenticationForm):
    username = forms.EmailField(label="Email", widget=forms.EmailInput(
        attrs={"autofocus": True, "autocomplete": "email"}))

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if not Membership.objects.filter(user=user).exists():
            raise forms.ValidationError(
                "This sign-in belongs to no customer account; operators use /admin/.",
                code="no_account")


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in ALL_SCOPES], initial=list(ALL_SCOPES),
        widget=forms.CheckboxSelectMultiple)
    expires_on = forms.DateField(required=False, label="Expires on (UTC, optional)",
                                 widget=forms.DateInput(attrs={"type": "date"}))

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.now().date():
            raise forms.ValidationError("Choose a day after today.")
        return day


OLD_KEY_GRACE = {"0": timedelta(0), "3600": timedelta(hours=1), "86400": timedelta(days=1),
                 "604800": timedelta(days=7)}


class ApiKeyRollForm(forms.Form):
    old_key_valid_for = forms.ChoiceField(choices=[
        ("0", "stops working now"), ("3600", "works 1 more hour"),
        ("86400", "works 24 more hours"), ("604800", "works 7 more days")], initial="86400")


class SessionCreateForm(forms.Form):
    name = forms.CharField(max_length=100, required=False)
    phone_number = forms.CharField(
        max_length=32, required=False, label="Phone number (optional)",
        help_text="Give the number to log in with an 8-character pairing code as well as the "
                  "QR code (international format, e.g. 14155552671).")


class MessageFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search",
                        help_text="a message id, a phone number or words of the text")
    status = forms.ChoiceField(required=False, choices=[
        ("", "any status"), *[(s, s) for s in
                              ("queued", "sent", "delivered", "read", "failed", "received")]])
    direction = forms.ChoiceField(required=False, choices=[
        ("", "both directions"), ("outbound", "outbound"), ("inbound", "inbound")])
    session = forms.CharField(required=False, max_length=40)
    chat = forms.CharField(required=False, max_length=100)


class WebhookCreateForm(forms.Form):
    url = forms.CharField(max_length=2048, label="URL",
                          widget=forms.URLInput(attrs={"placeholder": "https://"}))
    events = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENT_TYPES], initial=list(EVENT_TYPES),
        widget=forms.CheckboxSelectMultiple, required=False)
    session = forms.ChoiceField(required=False, label="Only for session")
    description = forms.CharField(max_length=200, required=False)

    def __init__(self, *args, sessions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["session"].choices = [("", "all sessions")] + [
            (s.id, f"{s.name or s.id} ({s.status})") for s in sessions]


class PlanChangeForm(forms.Form):
    # No plan chosen until the owner picks one: a preselected first plan was often a downgrade.
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), empty_label="Choose a plan…")
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(
        attrs={"rows": 3, "placeholder": "Anything the operator should know (optional)"}))

    def __init__(self, *args, account=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = (Plan.objects.exclude(pk=account.plan_id)
                                        .order_by("daily_message_limit", "name"))
