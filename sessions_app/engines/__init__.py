"""Which engine runs (`WHATSAPP_ENGINE`) is known here and nowhere else."""

from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from sessions_app.engines.base import Engine, EngineEvent
from sessions_app.engines.bus import get_event_bus


def publish_event(*events: EngineEvent) -> None:
    """Put engine events on the bus (all or none) and wake the consumer."""
    get_event_bus().publish(*events)
    from sessions_app.tasks import schedule_event_drain

    schedule_event_drain()


@lru_cache(maxsize=2)
def _engine_for(name: str) -> Engine:
    if name == "sandbox":
        from sessions_app.engines.sandbox.engine import SandboxEngine

        return SandboxEngine(publish_event)
    if name == "whatsmeow":
        from sessions_app.engines.whatsmeow.remote import RemoteEngine

        return RemoteEngine(publish_event)
    raise ImproperlyConfigured(f"WHATSAPP_ENGINE={name!r} is not an engine this service has")


def get_engine() -> Engine:
    return _engine_for(settings.WHATSAPP_ENGINE)


def engine_urlpatterns() -> list:
    """Routes that exist only for one engine (the sandbox's controls)."""
    if settings.WHATSAPP_ENGINE == "sandbox":
        from sessions_app.engines.sandbox.urls import urlpatterns

        return urlpatterns
    return []
