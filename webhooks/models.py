from django.db import models

from accounts.models import Account
from infra.ids import new_delivery_id, new_event_id, new_webhook_id


class Event(models.Model):
    """Something a customer can be told about (`message.received`, `message.status`,
    `session.status`), written in the same transaction as the change that caused it."""

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    # Indexed by `event_account_id`, which leads with it.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events",
                                db_index=False)
    type = models.CharField(max_length=40)
    session_id = models.CharField(max_length=40, blank=True)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "-id"], name="event_account_id")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class Webhook(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_webhook_id,
                          editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2048)
    events = models.JSONField()
    session = models.ForeignKey("sessions_app.Session", null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="webhooks")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100)
    # During a rotation the previous secret signs too, until it expires.
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Since when every delivery has failed (cleared by a success): 5 days of it disables.
    failing_since = models.DateTimeField(null=True, blank=True)
    # The endpoint's health, for the consoles and the API: failed posts in a row (cleared by
    # a success) and the last failure, what went wrong and the start of what it answered.
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_error = models.CharField(max_length=500, blank=True)
    last_failure_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_failure_response = models.CharField(max_length=500, blank=True)
    # When the account's owners were told by email that it keeps failing (once per streak).
    failure_notified_at = models.DateTimeField(null=True, blank=True)
    delivery_lease_owner = models.CharField(max_length=64, blank=True)
    delivery_lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "-id"], name="webhook_account_id")]

    def __str__(self) -> str:
        return f"{self.id} {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Delivery(models.Model):
    """One event for one webhook, retried until it succeeds or its schedule runs out."""

    id = models.CharField(primary_key=True, max_length=40, default=new_delivery_id,
                          editable=False)
    # Indexed by the indexes below, which lead with it.
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries",
                                db_index=False)
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices,
                              default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        # A delivery is written at least twice (made pending, then posted), and each write
        # adds an entry to every index whose condition it meets: the indexes that find work
        # hold pending deliveries only, and failed ones (few) have their own.
        indexes = [
            # A delivery run's batch: the endpoint's pending deliveries in order. Partial, so
            # that the first hundred are read in order however large the backlog (an endpoint
            # back after an outage), not all sorted.
            models.Index(fields=["webhook", "id"], name="delivery_pending",
                         condition=models.Q(status=DeliveryStatus.PENDING)),
            # When the endpoint's next retry is due, and the sweeper's due deliveries.
            models.Index(fields=["webhook", "next_attempt_at"], name="delivery_pending_due",
                         condition=models.Q(status=DeliveryStatus.PENDING)),
            # The failed deliveries support and customers look for.
            models.Index(fields=["webhook", "id"], name="delivery_failed",
                         condition=models.Q(status=DeliveryStatus.FAILED)),
            # SQLite only, as `message_account_id` (messaging migration 0007).
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_id"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    response_snippet = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["attempted_at", "id"]

    def __str__(self) -> str:
        return f"{self.attempted_at:%Y-%m-%d %H:%M:%S} {self.status_code or self.error}"
