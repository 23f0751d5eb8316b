"""Shared by the benchmark scripts: a fresh PostgreSQL database, the production server
(gunicorn), an account with a connected sandbox session, wrk, and the report."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# Elsewhere for the test suite's runs (tests/test_bench_scripts.py): their own database (made
# anew by each script, dropped after) and reports that do not overwrite the committed ones.
RESULTS = Path(os.environ.get("BENCH_RESULTS_DIR", ROOT / "bench" / "results"))
DATABASE = os.environ.get("BENCH_DATABASE", "whatsapp_bench")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# The table the floor endpoint writes to; accept.py and cost_steps.py create it.
FLOOR_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS bench_accepted (id text PRIMARY KEY, account text NOT NULL, "
    "body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
)


def env_for(database: str, namespace: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": f"{PG}/{database}", "REDIS_URL": REDIS,
            "REDIS_NAMESPACE": namespace, "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(ROOT / "var" / "bench"), **extra}


def manage(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def fresh_database(env: dict, database: str) -> None:
    subprocess.run(["psql", PG + "/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {database}"],
                   check=True, capture_output=True)
    subprocess.run(["psql", PG + "/postgres", "-q", "-c", f"CREATE DATABASE {database}"],
                   check=True, capture_output=True)
    manage(env, "migrate", "--no-input", "-v", "0")


@contextlib.contextmanager
def gunicorn(env: dict, port: int, workers: int = 2, threads: int = 1):
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--threads", str(threads), "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                httpx.get(base + "/v1/health", timeout=1, trust_env=False)
                break
            time.sleep(0.1)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)


def account_with_session(env: dict, base: str, sessions: int = 1) -> tuple[str, list[str]]:
    manage(env, "create_plan", "bench", "--max-sessions", "100000", "--daily-messages",
           "100000000", "--rate-per-minute", "100000000", "--max-concurrent", "100000")
    key = manage(env, "create_api_key", "--account", f"bench-{uuid.uuid4().hex[:6]}",
                 "--plan", "bench").strip().splitlines()[-1]
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                          trust_env=False, timeout=30)
    ids = []
    for _ in range(sessions):
        session = client.post("/v1/sessions", json={}).json()["data"]["id"]
        client.post(f"/v1/sandbox/sessions/{session}/scan",
                    json={"phoneNumber": "14155552671"})
        ids.append(session)
    return key, ids


def pg_counters(database: str) -> dict[str, int]:
    """PostgreSQL's own count of the work done so far: WAL records written (the whole server:
    nothing else may run against it meanwhile), and the database's commits and rows inserted
    and updated. Read once the database has no session left, since a backend reports what it
    did by the time it exits. Mostly the same whatever the machine's speed, as instructions
    are: a row or an index entry written is a WAL record."""
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as connection:
        for _ in range(200):
            if not connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                      [database]).fetchone()[0]:
                break
            time.sleep(0.05)
        wal = connection.execute("SELECT wal_records FROM pg_stat_wal").fetchone()[0]
        commits, inserted, updated = connection.execute(
            "SELECT xact_commit, tup_inserted, tup_updated FROM pg_stat_database "
            "WHERE datname = %s", [database]).fetchone()
    return {"wal records": wal, "commits": commits, "rows inserted": inserted,
            "rows updated": updated}


def wrk(url: str, *, duration: int, connections: int, threads: int = 2,
        script: Path | None = None, env: dict | None = None) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if script:
        command[1:1] = ["-s", str(script)]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            env={**os.environ, **(env or {})}).stdout

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {"rps": rps, "p50": latency("50"), "p99": latency("99"),
            "errors": int(non_2xx.group(1)) if non_2xx else 0, "raw": output}


# What the reports call a process, by what its command line names: the pipeline's worker is
# Celery's, or the end-to-end floor's in its place (`bench/e2e.py --floor`).
PROGRAMS = {"gunicorn": "gunicorn", "celery": "worker", "pipeline_floor": "worker",
            "postgres": "postgres", "redis": "redis"}


def cpu_ticks_by_program() -> dict[str, int]:
    """CPU ticks (user + system) of every process on the machine, summed per program
    (gunicorn, worker, postgres, redis, other), read from /proc, with those of its children
    that have exited: a PostgreSQL backend that lived for one Celery task, say, is counted
    in its postmaster (missed before, it hid most of what the worker's statements cost)."""
    totals: dict[str, int] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue  # the benchmark script itself: counted apart, as "bench"
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        program = next((program for known, program in PROGRAMS.items()
                        if known in command or name.startswith(known)), "other")
        own, exited_children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
        totals[program] = totals.get(program, 0) + own + exited_children
    return totals


@contextlib.contextmanager
def cpu_split():
    """Measure the CPU each program uses during the block: yields a dict that is filled on
    exit with {program: CPU seconds}."""
    import resource

    result: dict[str, float] = {}
    before, tick = cpu_ticks_by_program(), os.sysconf("SC_CLK_TCK")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    yield result
    after = cpu_ticks_by_program()
    for program, ticks in after.items():
        result[program] = (ticks - before.get(program, 0)) / tick
    # wrk has exited by now: its CPU is in this process's finished children.
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["wrk"] = (done.ru_utime - children.ru_utime) + (done.ru_stime - children.ru_stime)
    mine = resource.getrusage(resource.RUSAGE_SELF)
    result["bench"] = (mine.ru_utime - own.ru_utime) + (mine.ru_stime - own.ru_stime)


def machine_speed() -> str:
    """How fast this machine is now, in two figures, for reading a report beside one from
    another day (this machine's speed drifts by up to half between days): a pure-Python loop
    of ten million additions, and the CPU one Redis round trip over loopback costs its client
    and the server together (10,000 PINGs, one at a time). The second is the price of a
    process going to sleep on a socket and being woken, paid at every round trip between the
    service's processes (70-95 us here on 2026-12-06; a few when 16 commands share the round
    trip). Run before the benchmark starts its load."""
    import resource

    import redis

    started, total = time.perf_counter(), 0
    for number in range(10_000_000):
        total += number
    loop_seconds = time.perf_counter() - started
    client = redis.Redis.from_url(REDIS)
    client.ping()
    before, server_before = resource.getrusage(resource.RUSAGE_SELF), cpu_ticks_by_program()
    for _ in range(10_000):
        client.ping()
    after, server_after = resource.getrusage(resource.RUSAGE_SELF), cpu_ticks_by_program()
    client.close()
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    server = (server_after.get("redis", 0) - server_before.get("redis", 0)) / os.sysconf(
        "SC_CLK_TCK")
    return (f"This machine at the start of the run: a Python loop of ten million additions in "
            f"{loop_seconds:.2f} s; one Redis round trip over loopback (PING, not pipelined) "
            f"{(own + server) * 100:.0f} us of CPU, client and server together.")


def write_report(name: str, title: str, lines: list[str]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(f"# {title}\n\n" + "\n".join(lines) + "\n")
    return path
