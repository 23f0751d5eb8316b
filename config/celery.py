import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def database_connections_at_task_start(**kwargs) -> None:
    """A task finds its process's database connection as a Django request would (kept for
    DB_CONN_MAX_AGE, dropped after an error or left outside autocommit), and alive: one that
    died while idle (the database restarted) is replaced now, not found dead by the task.
    Celery's own fix-up, which closed every connection around every task, is held off by
    CELERY_DB_REUSE_MAX: reconnecting cost a short task (one paced send) a third of its CPU."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
        if connection.connection is not None and not connection.is_usable():
            connection.close()


@task_postrun.connect
def database_connections_at_task_end(**kwargs) -> None:
    from django.db import close_old_connections

    close_old_connections()
