from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.scopes import ALL_SCOPES
from infra.ids import new_account_id, new_api_key_id


class Plan(models.Model):
    name = models.SlugField(max_length=50, unique=True)
    max_sessions = models.PositiveIntegerField()
    daily_message_limit = models.PositiveIntegerField(help_text="Messages accepted per UTC day")
    rate_limit_per_minute = models.PositiveIntegerField(help_text="Requests per minute per key")
    max_concurrent_requests = models.PositiveIntegerField(help_text="In-flight requests per key")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["daily_message_limit", "name"]

    def __str__(self) -> str:
        return self.name


class Account(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_account_id,
                          editable=False)
    name = models.CharField(max_length=100, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="accounts")
    is_active = models.BooleanField(
        default=True, help_text="A disabled account's keys are refused (403)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """An API key. Only an HMAC of the key is stored; `prefix` is public and finds the row."""

    id = models.CharField(primary_key=True, max_length=40, default=new_api_key_id,
                          editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=32, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.account_id})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @staticmethod
    def valid_scopes() -> tuple[str, ...]:
        return ALL_SCOPES


class DailyUsage(models.Model):
    """Messages accepted per account per UTC day; the daily quota is one upsert on this row."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="daily_usage")
    day = models.DateField()
    messages = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "day"], name="daily_usage_account_day")
        ]
        verbose_name_plural = "daily usage"

    def __str__(self) -> str:
        return f"{self.account_id} {self.day}: {self.messages}"


class ApiErrorLog(models.Model):
    """Every error response of the API, for support: what failed, for whom, with which id."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="error_logs"
    )
    key_prefix = models.CharField(max_length=32, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=64)
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["code", "-created_at"], name="errorlog_code_time"),
            models.Index(fields=["account", "-created_at"], name="errorlog_account_time"),
        ]
        verbose_name = "API error log entry"
        verbose_name_plural = "API error log"

    def __str__(self) -> str:
        return f"{self.status} {self.code} {self.request_id}"


class IdempotencyRecord(models.Model):
    """An `Idempotency-Key` seen on a POST: the request it belongs to and, once done, the
    response to replay. Kept 24 hours."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE,
                                related_name="idempotency_records")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "key"], name="idempotency_account_key")
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.key}"


class MemberRole(models.TextChoices):
    OWNER = "owner"  # everything, API keys and plan requests included
    MEMBER = "member"  # sessions, messages and webhooks; not keys or the plan


class Membership(models.Model):
    """A customer user's place in one account: what the dashboard shows them and lets them do.
    Operators (staff users) have none; a user belongs to at most one account."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="membership")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=10, choices=MemberRole.choices, default=MemberRole.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "user__email"]

    def __str__(self) -> str:
        return f"{self.user.email} ({self.role} of {self.account_id})"

    @property
    def is_owner(self) -> bool:
        return self.role == MemberRole.OWNER


class Invitation(models.Model):
    """An emailed link that lets someone set a password and join an account. Only a hash of
    the link's token is stored; it works once, until `expires_at`."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=MemberRole.choices, default=MemberRole.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(editable=False)
    accepted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.account_id}"

    @property
    def is_usable(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class PlanChangeStatus(models.TextChoices):
    OPEN = "open"
    APPROVED = "approved"
    DECLINED = "declined"


class PlanChangeRequest(models.Model):
    """A customer's request for another plan, decided by an operator in the admin."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE,
                                related_name="plan_change_requests")
    current_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    requested_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, max_length=2000)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                     related_name="+")
    status = models.CharField(max_length=10, choices=PlanChangeStatus.choices,
                              default=PlanChangeStatus.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["account"], condition=models.Q(status="open"),
                                    name="one_open_plan_change_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.current_plan} → {self.requested_plan} ({self.status})"
