"""Benchmark the accept path: POST /v1/messages/text under concurrent load against the
production setup (gunicorn, 2 workers, PostgreSQL, Redis), side by side in the same run with a
bare DRF endpoint (the ceiling on this machine) and with the durable floor: the bare endpoint
plus the I/O a send cannot do without (one committed INSERT, two Redis round trips), the most
any endpoint that keeps what it accepts and limits concurrency can reach here. Writes
bench/results/accept.md.

    .venv/bin/python bench/accept.py [--duration 10] [--connections 32]
"""

import argparse
import datetime
import json
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    DATABASE,
    FLOOR_TABLE_SQL,
    account_with_session,
    cpu_split,
    env_for,
    fresh_database,
    gunicorn,
    machine_speed,
    manage,
    write_report,
    wrk,
)

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.body = os.getenv("BENCH_BODY")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--port", type=int, default=8801)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker (more than 1: gunicorn's gthread worker)")
    parser.add_argument("--report", default="",
                        help="the report's name (default: accept, or accept-N-workers)")
    args = parser.parse_args()

    speed = machine_speed()
    env = env_for(DATABASE, f"bench-{uuid.uuid4().hex[:6]}")
    fresh_database(env, DATABASE)
    manage(env, "shell", "-c", f"from django.db import connection; "
                               f"connection.cursor().execute({FLOOR_TABLE_SQL!r})")
    with gunicorn(env, args.port, workers=args.workers, threads=args.threads) as base, \
            tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(LUA)
        lua.flush()
        key, (session,) = account_with_session(env, base)
        body = json.dumps({"sessionId": session, "to": "14155550123", "text": "benchmark"})
        script_env = {"BENCH_KEY": key, "BENCH_BODY": body}
        paths = {"bare": "/v1/bench/bare", "floor": "/v1/bench/floor",
                 "send": "/v1/messages/text"}
        for path in paths.values():  # warm up
            wrk(base + path, duration=2, connections=args.connections, script=Path(lua.name),
                env=script_env)
        results, cpus = {}, {}
        for label, path in paths.items():
            with cpu_split() as cpus[label]:
                results[label] = wrk(base + path, duration=args.duration,
                                     connections=args.connections, script=Path(lua.name),
                                     env=script_env)
    bare, floor, send = results["bare"], results["floor"], results["send"]

    ratio = send["rps"] / bare["rps"]
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = [
        f"{datetime.date.today()}; gunicorn {args.workers} sync workers, PostgreSQL, Redis; "
        f"wrk 2 threads, {args.connections} connections, {args.duration} s per "
        "endpoint, same run, load generator on the same box.",
        "",
        speed,
        "",
        "| endpoint | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| bare DRF POST (ceiling) | {bare['rps']:.0f} | {bare['p50']:.1f} | {bare['p99']:.1f} "
        f"| {bare['errors']} |",
        f"| durable floor: bare + INSERT + 2 Redis round trips | {floor['rps']:.0f} "
        f"| {floor['p50']:.1f} | {floor['p99']:.1f} | {floor['errors']} |",
        f"| POST /v1/messages/text | {send['rps']:.0f} | {send['p50']:.1f} | {send['p99']:.1f} "
        f"| {send['errors']} |",
        "",
        f"Send / bare throughput: **{ratio:.2f}** (target at least 0.5: {verdict(ratio >= 0.5)}).",
        f"Floor / bare: {floor['rps'] / bare['rps']:.2f}; send / floor: "
        f"{send['rps'] / floor['rps']:.2f}. The floor is what the send endpoint's own I/O "
        "leaves of the bare ceiling before any of its Python runs.",
        f"Accepted messages/s: **{send['rps']:.0f}** (target at least 1,000: "
        f"{verdict(send['rps'] >= 1000)}); p99 {send['p99']:.1f} ms (target under 50 ms: "
        f"{verdict(send['p99'] < 50)}).",
        "",
        "Where the machine's CPU went, per request (ms), measured from /proc during each run:",
        "",
        "| endpoint | gunicorn | postgres | redis | wrk | other |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {label} | " + " | ".join(
            f"{cpu.get(program, 0) * 1000 / (result['rps'] * args.duration):.2f}"
            for program in ("gunicorn", "postgres", "redis", "wrk", "other")) + " |"
          for label, cpu, result in ((label, cpus[label], results[label])
                                     for label in paths)],
    ]
    name = args.report or ("accept" if args.workers == 2 else f"accept-{args.workers}-workers")
    path = write_report(name, "Accept path benchmark", lines)
    print(path.read_text())


if __name__ == "__main__":
    main()
