"""Files of incoming media messages: kept in Django's default storage (a local folder,
MEDIA_ROOT, unless an operator configures another backend) until MEDIA_RETENTION_DAYS, and
served to the account's keys at GET /v1/messages/{id}/media."""

import mimetypes
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone


def inbound_media_save(session_id: str, event_data: dict, data: bytes) -> dict:
    """Store the bytes of an incoming media message; returns what the event carries."""
    mime_type = event_data.get("mimeType") or "application/octet-stream"
    extension = mimetypes.guess_extension(mime_type.split(";")[0]) or ""
    name = default_storage.save(
        f"inbound/{session_id}/{event_data['whatsappId']}{extension}", ContentFile(data))
    return {"file": name, "size": len(data), "mimeType": mime_type}


def inbound_media_purge(now=None) -> int:
    """Delete the files older than the retention; their messages stay, without the file."""
    from messaging.models import Message

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
