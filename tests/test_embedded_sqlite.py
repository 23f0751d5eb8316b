"""The embedded mode's SQLite, as config/settings.py configures it, in a fresh interpreter.

The web process and the worker's threads write the same file. A transaction that reads, then
writes after another connection committed, must wait for the write lock, not fail with
"database is locked": the embedded worker's receipts and sends used to, now and then. And
what PostgreSQL guards with row locks (a plan's session limit) must hold here too.
"""

import json
import os
import subprocess
import sys
import textwrap

from tests.support.servers import ROOT

# Two connections (two threads): the first reads in a transaction; the second writes and
# commits meanwhile if SQLite lets it; then the first writes. Prints the errors and the sum.
READ_THEN_WRITE_WHILE_ANOTHER_COMMITS = textwrap.dedent("""
    import json, threading
    import django
    django.setup()
    from django.db import connection, connections, transaction

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        cursor.execute("INSERT INTO counter VALUES (1, 0)")
    connections.close_all()

    has_read, other_finished, errors = threading.Event(), threading.Event(), []

    def read_then_write():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT n FROM counter WHERE id = 1")
                has_read.set()
                # Deferred, the other connection commits now; immediate, it waits for us.
                other_finished.wait(1)
                cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
        except Exception as error:
            errors.append(repr(error))
        finally:
            has_read.set()
            connections.close_all()

    def write_meanwhile():
        has_read.wait(10)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE counter SET n = n + 10 WHERE id = 1")
        except Exception as error:
            errors.append(repr(error))
        finally:
            other_finished.set()
            connections.close_all()

    threads = [threading.Thread(target=read_then_write), threading.Thread(target=write_meanwhile)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    with connection.cursor() as cursor:
        cursor.execute("SELECT n FROM counter WHERE id = 1")
        print(json.dumps({"errors": errors, "n": cursor.fetchone()[0]}))
""")


# Eight threads create sessions at once for an account whose plan allows two.
CONCURRENT_SESSION_CREATES = textwrap.dedent("""
    import json, threading
    import django
    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from accounts.services import account_create, plan_upsert
    from sessions_app.services import session_create

    call_command("migrate", verbosity=0)
    plan, _created = plan_upsert(name="two", max_sessions=2, daily_message_limit=100,
                                 rate_limit_per_minute=60, max_concurrent_requests=5)
    account = account_create(name="embedded", plan=plan)
    connections.close_all()

    start, outcomes = threading.Barrier(8), []

    def create():
        start.wait()
        try:
            session_create(account_id=account.id)
            outcomes.append("created")
        except Exception as error:
            outcomes.append(getattr(error, "code", repr(error)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    print(json.dumps(sorted(outcomes)))
""")


def run_on_sqlite(script: str, folder) -> str:
    """`script` in a fresh interpreter on the embedded defaults: SQLite in `folder`, no Redis.
    Returns its last line of output."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "DATA_DIR", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=str(folder),
               DATABASE_URL=f"sqlite:///{folder / 'db.sqlite3'}")
    finished = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return finished.stdout.strip().splitlines()[-1]


def test_a_transaction_that_reads_then_writes_waits_for_the_lock_instead_of_failing(tmp_path):
    outcome = json.loads(run_on_sqlite(READ_THEN_WRITE_WHILE_ANOTHER_COMMITS, tmp_path))
    assert outcome == {"errors": [], "n": 11}


def test_the_session_limit_holds_under_concurrent_creates(tmp_path):
    # SQLite ignores SELECT ... FOR UPDATE: the count and the insert are kept together by
    # the write lock each transaction takes at BEGIN.
    outcomes = json.loads(run_on_sqlite(CONCURRENT_SESSION_CREATES, tmp_path))
    assert outcomes == ["created"] * 2 + ["session_limit_reached"] * 6
