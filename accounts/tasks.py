"""Celery tasks of the accounts app: thin, they call services."""

from celery import shared_task

from accounts.services import error_logs_purge


@shared_task(name="accounts.purge_error_logs", ignore_result=True)
def purge_error_logs() -> int:
    return error_logs_purge()
