import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

from infra.db import connections_ready_for_task, connections_rest_after_task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def database_connections_at_task_start(**kwargs) -> None:
    connections_ready_for_task()


@task_postrun.connect
def database_connections_at_task_end(**kwargs) -> None:
    connections_rest_after_task()
