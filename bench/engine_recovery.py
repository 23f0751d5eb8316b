"""How fast sessions come back: the real engine's supervisor and child processes (production
timings) around a fake WhatsApp (the chaos tests' one: it answers a dial at once, so the
figures are the service's own share of a recovery, without WhatsApp's dial), events applied
by a Celery worker's consumer. Writes bench/results/engine_recovery.md.

- network drop: each session's connection ends; time until it is `connected` again;
- host death: two hosts share the sessions; one is killed (-9); time until each of its
  sessions is `connected` on the other;
- event delay: from the moment an engine saw `connected` to the moment the database said so.

    .venv/bin/python bench/engine_recovery.py [--sessions 10]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DATABASE, ROOT, env_for, fresh_database, machine_speed, write_report
from tests.support.servers import stop_process_group


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with log.open("ab") as output:  # the process keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                stdout=output, stderr=output)


def spread(values: list[float], unit: str = "s") -> str:
    ordered = [v * 1000 for v in sorted(values)] if unit == "ms" else sorted(values)
    digits = 0 if unit == "ms" else 1
    return (f"{statistics.median(ordered):.{digits}f} {unit} median, "
            f"{ordered[max(0, round(len(ordered) * 0.95) - 1)]:.{digits}f} {unit} p95, "
            f"{ordered[-1]:.{digits}f} {unit} max")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    namespace = f"bench-recovery-{uuid.uuid4().hex[:6]}"
    queue = f"{namespace}-q"
    # Its own cache keys (the consumer's wake-up marker among them): a run never waits on a
    # marker another run left behind.
    env = env_for(DATABASE, namespace, CELERY_QUEUE=queue, LOG_LEVEL="WARNING",
                  CACHE_KEY_PREFIX=namespace)
    fresh_database(env, DATABASE)
    os.environ.update({key: env[key] for key in ("DATABASE_URL", "REDIS_URL",
                                                "REDIS_NAMESPACE", "SECRET_KEY")})
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()
    from accounts.models import Plan
    from accounts.services import account_create
    from infra.redis import redis_client
    from sessions_app.models import Session, SessionStatusChange
    from tests.support.chaos_whatsapp import chaos_key

    account = account_create(name=f"bench-{uuid.uuid4().hex[:6]}",
                             plan=Plan.objects.get(name="business"))
    ids = [Session.objects.create(account=account, engine="whatsmeow", status="connected",
                                  phone_number=f"1415555{n:04d}",
                                  engine_device=f"1415555{n:04d}:7@s.whatsapp.net").id
           for n in range(args.sessions)]

    def connected_since(moment: float, session_ids: list[str], phase: str) -> dict[str, float]:
        """Each session's seconds from `moment` to being connected again, once all are."""
        deadline = time.time() + 120
        while time.time() < deadline:
            rows = Session.objects.filter(pk__in=session_ids)
            times = {s.id: s.connected_at.timestamp() - moment for s in rows
                     if s.status == "connected" and s.connected_at
                     and s.connected_at.timestamp() > moment}
            if len(times) == len(session_ids):
                return times
            time.sleep(0.05)
        states = list(Session.objects.filter(pk__in=session_ids)
                      .values_list("id", "status", "last_error_code", "connected_at"))
        raise SystemExit(f"{phase}: sessions not connected again within 120 s: {states}")

    logs = ROOT / "var" / "bench" / "engine_recovery"  # the processes' logs, for a failed run
    logs.mkdir(parents=True, exist_ok=True)
    worker = start([sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue,
                    "--pool", "prefork", "--concurrency", "2", "--loglevel", "warning",
                    "--without-gossip", "--without-mingle", "--beat", "--schedule",
                    str(logs / f"beat-{queue}")], env, logs / "worker.log")
    hosts = {name: start([sys.executable, "-m", "tests.support.chaos_supervisor", name, "0",
                          "production"], {**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
                         logs / f"{name}.log")
             for name in ("host-a", "host-b")}
    try:
        begun = time.time()
        connected_since(begun - 1, ids, "first start")
        first_start = max(Session.objects.filter(pk__in=ids)
                          .values_list("connected_at", flat=True)).timestamp() - begun

        dropped = time.time()
        for session_id in ids:
            redis_client().rpush(chaos_key(namespace, session_id, "faults"), "drop")
        drops = connected_since(dropped, ids, "network drop")

        owners = {sid: redis_client().get(f"{namespace}:engine:lease:{sid}").decode()
                  .rsplit(":", 1)[0] for sid in ids}
        doomed = owners[ids[0]]
        victims = [sid for sid, owner in owners.items() if owner == doomed]
        killed = time.time()
        hosts[doomed].send_signal(signal.SIGKILL)
        failovers = connected_since(killed, victims, "host killed")

        delays = []
        for change in SessionStatusChange.objects.filter(session_id__in=ids, to_status="connected"):
            session = Session.objects.get(pk=change.session_id)
            if session.connected_at and change.created_at >= session.connected_at:
                delays.append((change.created_at - session.connected_at).total_seconds())
    finally:
        for process in (*hosts.values(), worker):
            stop_process_group(process, grace=20)
    lines = [
        f"{machine_speed()}",
        "",
        f"{args.sessions} sessions with a stored login on two engine hosts (`run_engine`'s "
        "supervisor, production timings: lease 15 s renewed every 5 s, scan every 5 s, "
        "backoff from 1 s), the production child process around a fake WhatsApp that "
        "answers a dial at once; events applied by one Celery worker (2 processes, with beat).",
        "",
        "| recovery | time |",
        "| --- | --- |",
        f"| first start, all sessions connected | {first_start:.1f} s |",
        f"| network drop → connected again (each session) | {spread(list(drops.values()))} |",
        f"| host killed (-9) → its {len(victims)} sessions connected on the other host | "
        f"{spread(list(failovers.values()))} |",
        f"| engine saw `connected` → the database says so | "
        f"{spread(delays, 'ms') if delays else 'n/a'} |",
        "",
        "A drop waits out the first backoff step (1 s) and a new process's start; a host's "
        "death waits for its leases to expire (15 s) and the next scan of the other host "
        "(up to 5 s), then the same. WhatsApp's own dial comes on top of each.",
    ]
    print(write_report("engine_recovery", "Real-engine recovery", lines).read_text())


if __name__ == "__main__":
    main()
