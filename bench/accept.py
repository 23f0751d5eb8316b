"""Benchmark the accept path: POST /v1/messages/text under concurrent load against the
production setup (gunicorn, 2 workers, PostgreSQL, Redis), side by side in the same run with a
bare DRF endpoint (the ceiling on this machine). Writes bench/results/accept.md.

    .venv/bin/python bench/accept.py [--duration 10] [--connections 32]
"""

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    account_with_session,
    cpu_split,
    env_for,
    fresh_database,
    gunicorn,
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
    args = parser.parse_args()

    env = env_for("whatsapp_bench", f"bench-{uuid.uuid4().hex[:6]}")
    fresh_database(env, "whatsapp_bench")
    with gunicorn(env, args.port, workers=args.workers, threads=args.threads) as base, \
            tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(LUA)
        lua.flush()
        key, (session,) = account_with_session(env, base)
        body = json.dumps({"sessionId": session, "to": "14155550123", "text": "benchmark"})
        script_env = {"BENCH_KEY": key, "BENCH_BODY": body}
        for url in (f"{base}/v1/bench/bare", f"{base}/v1/messages/text"):  # warm up
            wrk(url, duration=2, connections=args.connections, script=Path(lua.name),
                env=script_env)
        with cpu_split() as bare_cpu:
            bare = wrk(f"{base}/v1/bench/bare", duration=args.duration,
                       connections=args.connections, script=Path(lua.name), env=script_env)
        with cpu_split() as send_cpu:
            send = wrk(f"{base}/v1/messages/text", duration=args.duration,
                       connections=args.connections, script=Path(lua.name), env=script_env)

    ratio = send["rps"] / bare["rps"]
    verdict = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    lines = [
        f"gunicorn {args.workers} sync workers, PostgreSQL, Redis; wrk 2 threads, "
        f"{args.connections} "
        f"connections, {args.duration} s per endpoint, same run, load generator on the same box.",
        "",
        "| endpoint | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| bare DRF POST (ceiling) | {bare['rps']:.0f} | {bare['p50']:.1f} | {bare['p99']:.1f} "
        f"| {bare['errors']} |",
        f"| POST /v1/messages/text | {send['rps']:.0f} | {send['p50']:.1f} | {send['p99']:.1f} "
        f"| {send['errors']} |",
        "",
        f"Send / bare throughput: **{ratio:.2f}** (target at least 0.5: {verdict(ratio >= 0.5)}).",
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
          for label, cpu, result in (("bare", bare_cpu, bare),
                                     ("send", send_cpu, send))],
    ]
    name = "accept" if args.workers == 2 else f"accept-{args.workers}-workers"
    path = write_report(name, "Accept path benchmark", lines)
    print(path.read_text())


if __name__ == "__main__":
    main()
