from django.db import models

from accounts.models import Account
from config.ids import new_event_id


class Event(models.Model):
    """Something a customer can be told about (`message.received`, `message.status`,
    `session.status`), written in the same transaction as the change that caused it."""

    id = models.CharField(primary_key=True, max_length=40, default=new_event_id, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40)
    session_id = models.CharField(max_length=40, blank=True)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["account", "-id"], name="event_account_id")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"
