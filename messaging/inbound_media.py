"""Files of incoming media messages, stored by the engine (sessions_app/engines/media.py) and
served to the account's keys at GET /v1/messages/{id}/media: deleted after
MEDIA_RETENTION_DAYS, their messages kept without the file."""

from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone

from messaging.models import Message


def inbound_media_purge(now=None) -> int:
    """Delete the files older than the retention; their messages stay, without the file."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.MEDIA_RETENTION_DAYS)
    expired = Message.objects.filter(direction="inbound", created_at__lt=cutoff).exclude(
        media_file="")
    count = 0
    for message in expired.only("id", "media_file")[:5000]:
        default_storage.delete(message.media_file)
        Message.objects.filter(pk=message.pk).update(media_file="")
        count += 1
    return count
