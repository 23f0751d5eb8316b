"""A real Celery worker (with beat) in a subprocess, against the test database and Redis."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from tests.support.servers import ROOT, database_url_of_test_db, stop_process_group
from tests.support.servers import wait_until as wait_until  # where the tests import it from


@contextlib.contextmanager
def celery_worker(*, queue: str, namespace: str, extra_env: dict[str, str] | None = None,
                  beat: bool = True, pool: str = "prefork", concurrency: int = 2,
                  ) -> Iterator[subprocess.Popen]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_test_db(),
        "REDIS_NAMESPACE": namespace,
        "CELERY_QUEUE": queue,
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue,
               "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "warning",
               "--without-gossip", "--without-mingle", "-n", f"{queue}@%h"]
    if beat:
        command += ["--beat", "--schedule", f"/tmp/celerybeat-{queue}"]
    if os.environ.get("TEST_WORKER_LOGS"):
        log = open(f"/tmp/worker-{queue}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                   stdout=log, stderr=log)
    else:
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        stop_process_group(process, grace=15)
