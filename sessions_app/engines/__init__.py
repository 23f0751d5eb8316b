"""Which engine runs (`WHATSAPP_ENGINE`) is known here and nowhere else.

Engines report what they observe as events on the bus (`bus.py`); publishing wakes the event
consumer, a Celery task of the sessions app (`CONSUMER_TASK`), which turns them into database
changes. Nothing in this package imports the apps above it.

The real engine's child processes import modules of this package without Django: this file
imports Django, the bus and the wake-ups only inside its functions, so that a child process
(one per WhatsApp session) does not carry them.
"""

from functools import lru_cache

from sessions_app.engines.base import Engine, EngineEvent, Simulator

# The consumer's task (sessions_app/tasks.py), and its one pending wake-up.
CONSUMER_TASK = "sessions.drain_engine_events"
CONSUMER_WAKEUP_KEY = "engine-events:drain-scheduled"


def publish_event(*events: EngineEvent) -> None:
    """Put engine events on the bus (all or none) and wake the consumer."""
    from infra.wakeups import wake_after_commit
    from sessions_app.engines.bus import get_event_bus

    get_event_bus().publish(*events)
    wake_after_commit(CONSUMER_TASK, key=CONSUMER_WAKEUP_KEY, timeout=30)


@lru_cache(maxsize=2)
def _engine_for(name: str) -> Engine:
    if name == "sandbox":
        from sessions_app.engines.sandbox.engine import SandboxEngine

        return SandboxEngine(publish_event)
    if name == "whatsmeow":
        from sessions_app.engines.whatsmeow.remote import RemoteEngine

        return RemoteEngine(publish_event)
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"WHATSAPP_ENGINE={name!r} is not an engine this service has")


def get_engine() -> Engine:
    from django.conf import settings

    return _engine_for(settings.WHATSAPP_ENGINE)


def get_simulator() -> Simulator | None:
    """The running engine's controls of a simulated phone and WhatsApp (the sandbox's), or
    None for an engine that reaches the real WhatsApp."""
    engine = get_engine()
    return engine if isinstance(engine, Simulator) else None
