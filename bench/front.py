"""Benchmark the web front: POST /v1/messages/text straight to gunicorn (2 sync workers) and
through nginx in front of the same gunicorn (the production setup, deploy/), in one run, with
and without idle clients holding connections open. Writes bench/results/front.md.

    .venv/bin/python bench/front.py [--duration 10] [--connections 32] [--idle 4]
"""

import argparse
import contextlib
import datetime
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.accept import LUA
from bench.common import (
    DATABASE,
    account_with_session,
    env_for,
    fresh_database,
    gunicorn,
    machine_speed,
    manage,
    write_report,
    wrk,
)


@contextlib.contextmanager
def nginx_front(env: dict, port: int, upstream_port: int):
    """nginx with the configuration the production setup writes, in front of gunicorn."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    run_dir = Path(tempfile.mkdtemp(prefix="bench-front-", dir="/tmp"))
    run_dir.chmod(0o755)
    conf = run_dir / "nginx.conf"
    manage(env, "front_config", "--output", str(conf), "--listen", f"127.0.0.1:{port}",
           "--upstream", f"127.0.0.1:{upstream_port}", "--run-dir", str(run_dir / "nginx"))
    process = subprocess.Popen([nginx, "-c", str(conf), "-g", "daemon off;"])
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def idle_clients(base: str, count: int):
    """`count` connections that send half a request's headers and wait."""
    host, port = base.removeprefix("http://").split(":")
    held = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"POST /v1/messages/text HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(sock)
        time.sleep(0.2)
        yield
    finally:
        for sock in held:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--idle", type=int, default=4, help="idle clients in the second pass")
    parser.add_argument("--port", type=int, default=8811)
    parser.add_argument("--front-port", type=int, default=8812)
    parser.add_argument("--report", default="front")
    args = parser.parse_args()

    speed = machine_speed()
    env = env_for(DATABASE, f"bench-{uuid.uuid4().hex[:6]}")
    fresh_database(env, DATABASE)
    results: dict[tuple[str, int], dict] = {}
    with gunicorn(env, args.port, workers=2) as direct, \
            nginx_front(env, args.front_port, args.port) as front, \
            tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(LUA)
        lua.flush()
        key, (session,) = account_with_session(env, direct)
        body = json.dumps({"sessionId": session, "to": "14155550123", "text": "benchmark"})
        script_env = {"BENCH_KEY": key, "BENCH_BODY": body}
        run = lambda base, duration: wrk(  # noqa: E731
            base + "/v1/messages/text", duration=duration, connections=args.connections,
            script=Path(lua.name), env=script_env)
        for base in (direct, front):
            run(base, 2)  # warm up
        for idle in (0, args.idle):
            for label, base in (("gunicorn", direct), ("nginx + gunicorn", front)):
                with idle_clients(base, idle):
                    results[(label, idle)] = run(base, args.duration)

    lines = [
        f"{datetime.date.today()}; gunicorn 2 sync workers, PostgreSQL, Redis; nginx as "
        "`manage.py front_config` writes it; wrk 2 threads, "
        f"{args.connections} connections, {args.duration} s per row, same run, load "
        "generator on the same box. Idle clients: connections that sent half a request's "
        "headers and wait (gunicorn's sync worker that takes one waits with it, up to its "
        "30 s timeout).",
        "",
        speed,
        "",
        "| server | idle clients | requests/s | p50 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {label} | {idle} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} "
          f"| {r['errors']} |" for (label, idle), r in results.items()],
        "",
        f"Through the front / straight, no idle client: "
        f"**{results[('nginx + gunicorn', 0)]['rps'] / results[('gunicorn', 0)]['rps']:.2f}**.",
    ]
    path = write_report(args.report, "Web front benchmark", lines)
    print(path.read_text())


if __name__ == "__main__":
    main()
