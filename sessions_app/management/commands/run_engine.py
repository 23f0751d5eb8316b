"""`python manage.py run_engine`: the real WhatsApp engine's worker (see
sessions_app/engines/whatsmeow/supervisor.py). Run one or more, anywhere that reaches Redis and
the database. Never a Celery task: its children hold live connections."""

import signal

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from infra.redis import redis_client
from infra.wakeups import wake_after_commit
from sessions_app.engines import CONSUMER_TASK, CONSUMER_WAKEUP_KEY
from sessions_app.engines.media import inbound_media_save
from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor
from sessions_app.models import Session, SessionStatus

S = SessionStatus


def _live():
    return Session.objects.filter(engine="whatsmeow", deleted_at__isnull=True)


def resumable_sessions() -> list[tuple[str, str, str]]:
    """Sessions with a login that should be connected: connected or disconnected ones, and
    restarted ones resuming their stored login."""
    return list(_live().filter(
        Q(status__in=[S.CONNECTED, S.DISCONNECTED])
        | Q(status=S.STARTING) & ~Q(engine_device=""),
    ).order_by("id").values_list("id", "requested_phone_number", "engine_device"))


def session_wanted(session_id: str) -> bool:
    """Whether a session whose process ended unexpectedly should get a new one."""
    return _live().filter(pk=session_id, status__in=[
        S.STARTING, S.QR_PENDING, S.CONNECTED, S.DISCONNECTED]).exists()


def media_read(name: str) -> bytes:
    with default_storage.open(name) as file:
        return file.read()


def consumer_wake() -> None:
    wake_after_commit(CONSUMER_TASK, key=CONSUMER_WAKEUP_KEY, timeout=30)


def credential_store() -> str | None:
    """On PostgreSQL the credentials live in the service's own database (whatsmeow's tables);
    otherwise one SQLite file per session in DATA_DIR/whatsmeow."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        return None
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    port = f":{database['PORT']}" if database.get("PORT") else ""
    return (f"postgres://{database['USER']}{password}@{database['HOST'] or 'localhost'}{port}"
            f"/{database['NAME']}?sslmode={database.get('OPTIONS', {}).get('sslmode', 'disable')}")


def engine_supervisor(**overrides) -> EngineSupervisor:
    """The supervisor of this host, wired to the service (the chaos tests override its
    child process and timings)."""
    options = {
        "redis_client": redis_client(), "namespace": settings.REDIS_NAMESPACE,
        "stream": f"{settings.REDIS_NAMESPACE}:engine-events", "redis_url": settings.REDIS_URL,
        "store_dir": settings.DATA_DIR / "whatsmeow", "resumable_sessions": resumable_sessions,
        "session_wanted": session_wanted, "proxy_url": settings.WHATSAPP_PROXY_URL or None,
        "credential_store": credential_store(), "media_store": inbound_media_save,
        "media_open": media_read, "wake": consumer_wake,
        "max_sessions": settings.ENGINE_MAX_SESSIONS,
    }
    return EngineSupervisor(**{**options, **overrides})


def supervisor_run(supervisor: EngineSupervisor) -> None:
    """Run until SIGTERM or Ctrl-C, then stop the sessions' processes and let go of them."""
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop_event.set())
    try:
        supervisor.run()
    except KeyboardInterrupt:
        supervisor.stop_event.set()


class Command(BaseCommand):
    help = "Run the real WhatsApp engine worker (one process per live session)."

    def handle(self, *args, **options):
        if not settings.REDIS_URL:
            raise CommandError("run_engine needs REDIS_URL (commands and events go over Redis)")
        supervisor = engine_supervisor()(signal.SIGTERM, lambda *_: supervisor.stop_event.set())
        self.stdout.write(f"engine worker {supervisor.worker_id} running")
        try:
            supervisor.run()
        except KeyboardInterrupt:
            supervisor.stop_event.set()
