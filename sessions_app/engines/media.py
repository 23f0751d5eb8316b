"""Where an engine keeps the bytes of an incoming media message: Django's default storage (a
local folder, MEDIA_ROOT, unless an operator configures another backend). The event carries
the stored file's name; messaging serves the file and purges it after MEDIA_RETENTION_DAYS."""

import mimetypes

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def inbound_media_save(session_id: str, event_data: dict, data: bytes) -> dict:
    """Store the bytes of an incoming media message; returns what the event carries."""
    mime_type = event_data.get("mimeType") or "application/octet-stream"
    extension = mimetypes.guess_extension(mime_type.split(";")[0]) or ""
    name = default_storage.save(
        f"inbound/{session_id}/{event_data['whatsappId']}{extension}", ContentFile(data))
    return {"file": name, "size": len(data), "mimeType": mime_type}
