from django.conf import settings
from django.db import models

from accounts.models import Account
from infra.ids import new_session_id


class SessionStatus(models.TextChoices):
    STARTING = "starting"
    QR_PENDING = "qr_pending"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    EXPIRED = "expired"
    LOGGED_OUT = "logged_out"
    FAILED = "failed"


class Session(models.Model):
    """A WhatsApp number linked (or being linked) to an account. Deleting one logs it out and
    hides it from the API (`deleted_at`); the row stays for support and message history."""

    id = models.CharField(primary_key=True, max_length=40, default=new_session_id,
                          editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="sessions")
    name = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=20, choices=SessionStatus.choices,
                              default=SessionStatus.STARTING)
    engine = models.CharField(max_length=30)
    phone_number = models.CharField(max_length=20, blank=True)
    requested_phone_number = models.CharField(
        max_length=20, blank=True, help_text="Asked to log in by pairing code for this number"
    )
    # The linked device as WhatsApp knows it (user:device@server): a real engine resumes the
    # session from its stored credentials with it.
    engine_device = models.CharField(max_length=100, blank=True)
    qr_code = models.TextField(blank=True)
    qr_expires_at = models.DateTimeField(null=True, blank=True)
    pairing_code = models.CharField(max_length=16, blank=True)
    last_error = models.TextField(blank=True)
    # Why it is not connected, as a code (engines.base.SESSION_ERROR_CODES), and when the
    # engine tries again by itself (null: it will not, or does not know when).
    last_error_code = models.CharField(max_length=40, blank=True)
    reconnect_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    # When the status last changed: an engine event older than this is stale and ignored.
    status_changed_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The lease of the one sender allowed to send through this session at a time.
    sender_lease_owner = models.CharField(max_length=64, blank=True)
    sender_lease_until = models.DateTimeField(null=True, blank=True)
    # Pacing: the sender sends nothing through this session before then (its last send plus
    # SEND_MIN_INTERVAL_SECONDS), kept here so that it holds across sender runs.
    next_send_at = models.DateTimeField(null=True, blank=True)
    # The session's send policy (null: the service's defaults): a pause drawn between the two
    # intervals after each send, and at most so many sends a UTC day, the rest waiting.
    send_min_interval = models.FloatField(null=True, blank=True)
    send_max_interval = models.FloatField(null=True, blank=True)
    send_daily_limit = models.PositiveIntegerField(null=True, blank=True)
    # Its sends on `sends_day` (UTC), counted by the sender.
    sends_day = models.DateField(null=True, blank=True)
    sends_today = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["account", "-id"], name="session_account_id"),
            models.Index(fields=["status", "qr_expires_at"], name="session_status_qr_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    def send_policy(self) -> dict:
        """The policy in force, the service's default (SEND_MIN_INTERVAL_SECONDS) filled in."""
        low = (self.send_min_interval if self.send_min_interval is not None
               else settings.SEND_MIN_INTERVAL_SECONDS)
        high = self.send_max_interval if self.send_max_interval is not None else low
        return {"minIntervalSeconds": low, "maxIntervalSeconds": max(low, high),
                "dailyLimit": self.send_daily_limit}


class SessionStatusChange(models.Model):
    """A session's history, so support can see what happened to it and why."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class EngineEventRecord(models.Model):
    """The event bus of the embedded mode (with Redis, a Redis stream takes its place)."""

    session_id = models.CharField(max_length=40)
    payload = models.JSONField()
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["processed_at", "id"], name="engine_event_pending")]

    def __str__(self) -> str:
        return f"{self.payload.get('type')} {self.session_id}"


class Group(models.Model):
    """A WhatsApp group a session is (or was) in, as the engine last reported it: kept so that
    support, the dashboard and chat names have it while the session is away."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="groups")
    group_id = models.CharField(max_length=100)  # `...@g.us`
    subject = models.CharField(max_length=256, blank=True)
    description = models.TextField(blank=True)
    # [{id, phoneNumber, isAdmin}], as the API shows them.
    participants = models.JSONField(default=list)
    left_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "group_id"],
                                               name="group_session_group_id")]
        ordering = ["subject", "group_id"]

    def __str__(self) -> str:
        return self.subject or self.group_id


class LidMapping(models.Model):
    """Whose number a hidden WhatsApp id (`...@lid`) is, as WhatsApp disclosed it to a
    session."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="lid_mappings")
    lid = models.CharField(max_length=100)
    phone_number = models.CharField(max_length=20)
    learned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "lid"],
                                               name="lid_mapping_session_lid")]
        indexes = [models.Index(fields=["session", "phone_number"],
                                name="lid_mapping_session_phone")]

    def __str__(self) -> str:
        return f"{self.lid} = {self.phone_number}"
