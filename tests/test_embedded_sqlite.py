"""The embedded mode's SQLite, as config/settings.py configures it, in a fresh interpreter.

The web process and the worker's threads write the same file. A transaction that reads, then
writes after another connection committed, must wait for the write lock, not fail with
"database is locked": the embedded worker's receipts and sends used to, now and then.
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


def test_a_transaction_that_reads_then_writes_waits_for_the_lock_instead_of_failing(tmp_path):
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "DATA_DIR")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=str(tmp_path),
               DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    finished = subprocess.run([sys.executable, "-c", READ_THEN_WRITE_WHILE_ANOTHER_COMMITS],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    outcome = json.loads(finished.stdout.strip().splitlines()[-1])
    assert outcome == {"errors": [], "n": 11}
