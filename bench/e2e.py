"""End-to-end benchmark: messages accepted over HTTP -> sent by the sandbox engine through the
Celery workers -> `message.status` webhooks received by a local receiver. Reports messages per
second end to end, the time from accept to the `sent` webhook (p50/p99), and memory per
process. Writes bench/results/e2e.md.

    .venv/bin/python bench/e2e.py [--messages 6000] [--sessions 10]
"""

import argparse
import datetime
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    DATABASE,
    ROOT,
    account_with_session,
    cpu_split,
    env_for,
    fresh_database,
    gunicorn,
    machine_speed,
    write_report,
)
from bench.pipeline_floor import create_tables as create_floor_tables


class Receiver:
    """The customers' webhook endpoint: HTTP/1.1 with kept-alive connections, as customers'
    servers (nginx, any framework) speak it; records when the `sent` status of each message
    arrived and answers 204, `latency` seconds late if asked (a customer's server across a
    network, doing its own work). A customer's server runs on its own machine; this one
    shares the two cores with the service, so it does no more than it must: raw sockets, and
    JSON decoded only for the posts that carry a `sent` (the bodies are compact JSON with
    sorted keys). http.server's handler cost about three times as much CPU per post."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.sent_at: dict[str, float] = {}
        self.posts: list[None] = []  # one item per post received (list.append is atomic)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as stream:
            while stream.readline():  # the request line; b"" when the client closed
                length = 0
                while (line := stream.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = stream.read(length)
                self.posts.append(None)
                if b'"status":"sent"' in body:
                    event = json.loads(body)
                    if event["event"] == "message.status" and event["data"]["status"] == "sent":
                        self.sent_at.setdefault(event["data"]["id"], time.time())
                if self.latency:
                    time.sleep(self.latency)
                connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def tasks_run(env: dict, worker_names: list[str]) -> dict[str, int]:
    """How many tasks of each name the workers ran since they started (Celery's remote
    control: `inspect stats`), asked after the measured window so it costs that nothing."""
    answer = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config", "inspect", "stats", "--json",
         "--timeout", "10", "--destination", ",".join(worker_names)],
        cwd=ROOT, env=env, capture_output=True, text=True)
    totals: dict[str, int] = {}
    try:
        replies = json.loads(answer.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return totals  # no answer: the report says so
    for stats in replies.values():
        for name, count in stats.get("total", {}).items():
            totals[name] = totals.get(name, 0) + count
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2,
                        help="Celery worker processes (prefork)")
    parser.add_argument("--port", type=int, default=8802)
    parser.add_argument("--send-interval", type=float, default=0.0,
                        help="SEND_MIN_INTERVAL_SECONDS: the pause between two sends of a "
                             "session (1 with the real engine)")
    parser.add_argument("--receiver-latency-ms", type=float, default=0.0,
                        help="the webhook receiver answers each post this much later")
    parser.add_argument("--slow-endpoints", type=int, default=0,
                        help="more webhooks for the same events, at receivers that answer "
                             "each post --slow-latency-ms late")
    parser.add_argument("--slow-latency-ms", type=float, default=3000.0)
    parser.add_argument("--webhook-worker", action="store_true",
                        help="deliveries on CELERY_WEBHOOK_QUEUE, taken by a second worker "
                             "of --webhook-threads threads")
    parser.add_argument("--webhook-threads", type=int, default=8)
    parser.add_argument("--floor", action="store_true",
                        help="the end-to-end floor in the service's place: the accept path's "
                             "durable floor and --concurrency processes of "
                             "bench/pipeline_floor.py instead of the Celery worker")
    args = parser.parse_args()
    if args.floor and (args.send_interval or args.slow_endpoints or args.webhook_worker):
        parser.error("--floor has no pacing, no more endpoints and no webhook worker")

    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    env = env_for(DATABASE, namespace, SANDBOX_STATUS_DELAY_SECONDS="0",
                  SEND_MIN_INTERVAL_SECONDS=str(args.send_interval),
                  ALLOW_PRIVATE_URLS="true",
                  WEBHOOK_REQUIRE_HTTPS="false", CELERY_QUEUE=queue,
                  SWEEP_INTERVAL_SECONDS="2",
                  **({"CELERY_WEBHOOK_QUEUE": f"{queue}-hooks"} if args.webhook_worker else {}))
    speed = machine_speed()
    fresh_database(env, DATABASE)
    if args.floor:
        create_floor_tables(env["DATABASE_URL"])
    receiver = Receiver(args.receiver_latency_ms / 1000)
    slow_receivers = [Receiver(args.slow_latency_ms / 1000) for _ in range(args.slow_endpoints)]
    worker_names: list[str] = []

    def celery_worker(worker_queue: str, *options: str) -> subprocess.Popen:
        worker_names.append(f"{worker_queue}@{socket.gethostname()}")
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", worker_queue,
             "-n", worker_names[-1], *options, "--loglevel", "warning", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    floor_workers = [subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "pipeline_floor.py"), env["DATABASE_URL"],
         env["REDIS_URL"], namespace, receiver.url], cwd=ROOT, env=env, start_new_session=True)
        for _ in range(args.concurrency)] if args.floor else []
    worker = None if args.floor else celery_worker(
        queue, "--pool", "prefork", "--concurrency", str(args.concurrency),
        "--beat", "--schedule", str(ROOT / "var" / f"beat-{queue}"))
    webhook_worker = celery_worker(
        f"{queue}-hooks", "--pool", "threads", "--concurrency", str(args.webhook_threads)
    ) if args.webhook_worker else None
    try:
        with gunicorn(env, args.port) as base:
            key, sessions = account_with_session(env, base, sessions=args.sessions)
            client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                                  trust_env=False, timeout=30)
            for endpoint in () if args.floor else (receiver, *slow_receivers):
                client.post("/v1/webhooks", json={"url": endpoint.url,
                                                  "events": ["message.status"]})
            send_path = "/v1/bench/floor-queue" if args.floor else "/v1/messages/text"
            accepted: dict[str, float] = {}
            lock = threading.Lock()

            def send(n: int) -> None:
                # http.client: the lightest HTTP client at hand (httpx costs the shared cores
                # about twice the CPU per request); gunicorn's sync workers close each
                # connection after its answer, and http.client reconnects.
                connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
                headers = {"Authorization": f"Bearer {key}",
                           "Content-Type": "application/json"}
                for i in range(n, args.messages, 16):
                    body = {"sessionId": sessions[i % len(sessions)], "to": "14155550123",
                            "text": f"m{i}"}
                    connection.request("POST", send_path, body=json.dumps(body),
                                       headers=headers)
                    response = connection.getresponse()
                    answer = response.read()
                    stamp = time.time()
                    if response.status != 201:
                        raise SystemExit(f"send refused: {answer!r}")
                    with lock:
                        accepted[json.loads(answer)["data"]["id"]] = stamp
                connection.close()

            with cpu_split() as cpu:
                started = time.time()
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(send, range(16)))
                accept_seconds = time.time() - started
                deadline = time.time() + 600
                while len(receiver.sent_at) < len(accepted) and time.time() < deadline:
                    time.sleep(0.2)
                done = time.time()
                posts_by_then = len(receiver.posts)
            # Outside the measured window: the `delivered` and `read` posts still on their way,
            # so that the run is seen through to its last post (and a test can count them).
            while len(receiver.posts) < 3 * len(accepted) and time.time() < deadline:
                time.sleep(0.2)
            all_posted = time.time() if len(receiver.posts) >= 3 * len(accepted) else None
            memory = {"gunicorn worker": [rss_mb(p) for p in children(
                int(subprocess.run(["pgrep", "-f", f"127.0.0.1:{args.port}", "-o"],
                                   capture_output=True, text=True).stdout.split()[0]))],
                      "worker process": [rss_mb(p.pid) for p in floor_workers] if args.floor else
                      [rss_mb(worker.pid)] + [rss_mb(p) for p in children(worker.pid)]}
            tasks = {} if args.floor else tasks_run(env, worker_names)
    finally:
        workers = [process for process in (worker, webhook_worker, *floor_workers)
                   if process is not None]
        for process in workers:
            os.killpg(process.pid, signal.SIGTERM)
        for process in workers:
            try:  # a warm shutdown waits for a delivery run to end (its budget: 25 s)
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for schedule in (ROOT / "var").glob(f"beat-{queue}*"):  # the worker's beat schedule
            schedule.unlink()

    latencies = sorted((receiver.sent_at[m] - t) * 1000 for m, t in accepted.items()
                       if m in receiver.sent_at)
    delivered = len(latencies)
    end_to_end = delivered / (max(receiver.sent_at.values()) - started) if delivered else 0

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] if latencies else 0

    lines = [
        f"{datetime.date.today()}; {args.messages} text messages over {args.sessions} sandbox "
        "sessions, 16 concurrent clients; gunicorn 2 workers; "
        + (f"the end-to-end floor in the service's place (`bench/pipeline_floor.py`: the "
           f"accept path's durable floor, {args.concurrency} floor worker processes)"
           if args.floor else f"one Celery worker (prefork {args.concurrency}, beat)")
        + "; PostgreSQL, Redis; webhook receiver on loopback"
        + (f", answering each post {args.receiver_latency_ms:g} ms late (as a customer's "
           f"server across a network would; WEBHOOK_MAX_IN_FLIGHT "
           f"{env.get('WEBHOOK_MAX_IN_FLIGHT', '10')})" if args.receiver_latency_ms else "")
        + (f"; {args.slow_endpoints} more webhooks for the same events at receivers answering "
           f"each post {args.slow_latency_ms:g} ms late" if args.slow_endpoints else "")
        + ("; deliveries on CELERY_WEBHOOK_QUEUE, taken by a second worker of "
           f"{args.webhook_threads} threads" if args.webhook_worker else "")
        + (f"; sends paced {args.send_interval:g} s apart per session (SEND_MIN_INTERVAL_"
           f"SECONDS): at most {args.sessions / args.send_interval:.0f} msgs/s"
           if args.send_interval else "")
        + "; all on this 2-core machine.",
        "",
        speed,
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| accepted | {len(accepted)} in {accept_seconds:.1f} s "
        f"({len(accepted) / accept_seconds:.0f}/s) |",
        f"| `sent` webhooks received | {delivered} |",
        f"| webhook posts received by then (`sent`, `delivered`, `read`: 3 a message) | "
        f"{posts_by_then} |",
        "| every post received | "
        + (f"yes, {all_posted - done:.1f} s after the last `sent` |" if all_posted else "NO |"),
        f"| end to end (accept to `sent` webhook) | **{end_to_end:.0f} msgs/s** "
        f"(target 500: {'met' if end_to_end >= 500 else 'NOT met'}) |",
        f"| accept -> `sent` webhook p50 | {pct(0.5):.0f} ms |",
        f"| accept -> `sent` webhook p99 | {pct(0.99):.0f} ms |",
        f"| median RSS, gunicorn worker | {statistics.median(memory['gunicorn worker']):.0f} MB |",
        f"| median RSS, {'floor worker' if args.floor else 'Celery'} process | "
        f"{statistics.median(memory['worker process']):.0f} MB |",
        f"| finished | {'yes' if delivered == len(accepted) else 'NO'} in "
        f"{done - started:.0f} s |",
        "",
        "CPU per message over the whole run (ms), by program, from /proc (\"bench\" is this "
        "script: its 16 client threads and the webhook receiver):",
        "",
        f"| gunicorn | {'floor worker' if args.floor else 'celery'} | postgres | redis | bench "
        "| other |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        "| " + " | ".join(f"{cpu.get(name, 0) * 1000 / max(len(accepted), 1):.2f}"
                         for name in ("gunicorn", "worker", "postgres", "redis", "bench",
                                      "other")) + " |",
    ]
    if not args.floor:
        lines += [
            "",
            "Celery tasks run per message, by task (`celery inspect stats`, the whole run):",
            "",
            "| task | per message | total |",
            "| --- | ---: | ---: |",
            *(f"| `{task}` | {count / max(len(accepted), 1):.2f} | {count} |"
              for task, count in sorted(tasks.items(), key=lambda item: -item[1])),
            f"| all | {sum(tasks.values()) / max(len(accepted), 1):.2f} | "
            f"{sum(tasks.values())} |" if tasks else "| (the workers did not answer) | | |",
        ]
    name = "e2e-floor" if args.floor else "e2e"
    if args.concurrency != 2:
        name += f"-{args.concurrency}-processes"
    if args.receiver_latency_ms:
        name += f"-latency-{args.receiver_latency_ms:g}-ms"
    if args.send_interval:
        name += f"-paced-{args.sessions}-sessions"
    if args.slow_endpoints:
        name += f"-slow-endpoints-{args.slow_endpoints}"
    if args.webhook_worker:
        name += "-webhook-worker"
    path = write_report(name, "End-to-end benchmark", lines)
    print(path.read_text())


if __name__ == "__main__":
    main()
