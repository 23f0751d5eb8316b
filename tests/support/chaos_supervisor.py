"""An engine host for the chaos tests: `run_engine`'s supervisor, wired to the service as in
production (sessions from the database, events to the Redis stream, the consumer woken),
with the fake WhatsApp in its child processes and short timings.

    python -m tests.support.chaos_supervisor WORKER_ID MAX_SESSIONS [production]

With `production`, the production lease, scan and backoff timings (the recovery benchmark).
"""

import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from sessions_app.management.commands.run_engine import engine_supervisor, supervisor_run
    from tests.support.chaos_whatsapp import chaos_child

    worker_id, max_sessions = sys.argv[1], int(sys.argv[2])
    timings = {} if sys.argv[3:] == ["production"] else {
        "lease_ms": CHAOS_LEASE_MS, "scan_every": 0.5, "connect_timeout": 3, "max_backoff": 2}
    supervisor = engine_supervisor(child_target=chaos_child, worker_id=worker_id,
                                   max_sessions=max_sessions, **timings)
    supervisor_run(supervisor)


# A short lease: a dead host's sessions move within seconds.
CHAOS_LEASE_MS = 3000

if __name__ == "__main__":
    main()
