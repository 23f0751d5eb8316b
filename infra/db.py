"""Database connections in Celery's worker processes, kept as Django keeps them for requests.

A task finds its process's connection as a request would (kept for DB_CONN_MAX_AGE, dropped
after an error or left outside autocommit), and alive: one that died while it rested (the
database restarted) is replaced before the task runs, not found dead by it. (Celery's own
fix-up, which closes every connection around every task, is held off by CELERY_DB_REUSE_MAX:
reconnecting for every task costs a short one, a paced send, much of its CPU.)"""

import select
import time

from django.db import close_old_connections, connections

# A connection that rested longer than this between two tasks is asked whether it is alive
# (SELECT 1) before the next one uses it; one that rested less is only looked at (below).
ASK_AFTER_REST_SECONDS = 5.0


def connections_ready_for_task() -> None:
    """Before a task: replace a connection that died while it rested."""
    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
        if connection.connection is not None and _died_while_resting(connection):
            connection.close()


def connections_rest_after_task() -> None:
    """After a task: close what Django would close after a request, note when the rest began."""
    close_old_connections()
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        connection.task_rest_started = now


def _died_while_resting(connection) -> bool:
    """A server that ends a connection (a restart, pg_terminate_backend, an idle timeout) says
    so and closes it: on a connection at rest, with nothing asked, anything readable is that
    goodbye or the end of the stream. Looking costs no round trip (a SELECT 1 before every
    task cost a paced send a PostgreSQL statement more). A host that went away says nothing,
    so a connection that rested long, as it would have through a reboot, is asked as well."""
    rested = time.monotonic() - getattr(connection, "task_rest_started", 0.0)
    fileno = getattr(connection.connection, "fileno", None)  # SQLite's has no socket
    if fileno is None or rested > ASK_AFTER_REST_SECONDS:
        return not connection.is_usable()
    try:
        readable, _, _ = select.select([fileno()], [], [], 0)
    except (OSError, ValueError):  # the socket is already gone
        return True
    return bool(readable)
