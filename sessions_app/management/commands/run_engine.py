"""`python manage.py run_engine`: the real WhatsApp engine's worker (see
sessions_app/engines/whatsmeow/supervisor.py). Run one or more, anywhere that reaches Redis and
the database. Never a Celery task: its children hold live connections."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from infra.redis import redis_client
from sessions_app.engines.media import inbound_media_save
from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor
from sessions_app.models import Session, SessionStatus


def resumable_sessions():
    return list(Session.objects.filter(
        engine="whatsmeow", deleted_at__isnull=True,
        status__in=[SessionStatus.CONNECTED, SessionStatus.DISCONNECTED],
    ).values_list("id", "requested_phone_number", "engine_device"))


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


class Command(BaseCommand):
    help = "Run the real WhatsApp engine worker (one process per live session)."

    def handle(self, *args, **options):
        if not settings.REDIS_URL:
            raise CommandError("run_engine needs REDIS_URL (commands and events go over Redis)")
        supervisor = EngineSupervisor(
            redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE,
            stream=f"{settings.REDIS_NAMESPACE}:engine-events", redis_url=settings.REDIS_URL,
            store_dir=settings.DATA_DIR / "whatsmeow", resumable_sessions=resumable_sessions,
            proxy_url=settings.WHATSAPP_PROXY_URL or None,
            credential_store=credential_store(), media_store=inbound_media_save,
        )
        signal.signal(signal.SIGTERM, lambda *_: supervisor.stop_event.set())
        self.stdout.write(f"engine worker {supervisor.worker_id} running")
        try:
            supervisor.run()
        except KeyboardInterrupt:
            supervisor.stop_event.set()
