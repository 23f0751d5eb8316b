"""Memory of the real engine's session processes, measured, and what was tried to lower it.

Each idle session is a spawned process with neonize (whatsmeow) loaded and its client
connecting: the dial goes to a local proxy that accepts and never answers, so nothing leaves
this machine and the process sits as a session waits. Three layouts:

- the session process as it runs now (it imports only what it needs);
- the same with the service's modules loaded beside neonize (Django, the event bus, Celery's
  wake-ups), as the process did before: the saving of the lean imports;
- several sessions' clients in one process: the saving a shared process would bring, and why
  it is not used (a Go panic of one client aborts the process, and every session in it).

Unique set size (USS: memory only that process holds), proportional set size (PSS) and RSS
come from /proc/PID/smaps_rollup. Writes bench/results/engine_memory.md.

    .venv/bin/python bench/engine_memory.py [--sessions 5]
"""

import argparse
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from bench.common import REDIS, machine_speed, write_report


def silent_proxy() -> str:
    """An HTTP proxy on loopback that takes the CONNECT and never answers it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    held = []

    def serve():
        while True:
            conn, _ = sock.accept()
            held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def memory_mb(pid: int) -> dict[str, float]:
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    kb = {line.split(":")[0]: int(line.split()[1]) for line in rollup}
    return {"uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, "pss": kb["Pss"] / 1024,
            "rss": kb["Rss"] / 1024}


def session_processes(target, sessions: int, proxy: str, store: str,
                      settle: float) -> list[dict]:
    """`sessions` session processes under a supervisor, measured once they settled."""
    import redis

    from sessions_app.engines.whatsmeow import protocol
    from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor

    supervisor = EngineSupervisor(
        redis_client=redis.Redis.from_url(REDIS), namespace=f"bench-{uuid.uuid4().hex[:6]}",
        stream="bench-engine-events", redis_url=REDIS, store_dir=Path(store),
        proxy_url=proxy, child_target=target)
    for _ in range(sessions):
        supervisor.handle(protocol.command("start", f"ses_{uuid.uuid4().hex[:12]}").encode())
    time.sleep(settle)  # loaded, client made, dial held: a session waiting
    measured = [memory_mb(c.process.pid) for c in supervisor.children.values()
                if c.process.is_alive()]
    for session_id in list(supervisor.children):
        supervisor._stop_child(session_id)
    if len(measured) != sessions:
        raise SystemExit(f"{sessions - len(measured)} session processes died while measured")
    return measured


def shared(sessions: int, proxy: str, store: str, settle: float) -> dict[str, float]:
    from bench.engine_children import shared_process

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=shared_process, args=(store, proxy, sessions, child))
    process.start()
    parent.recv()
    time.sleep(settle)
    measured = memory_mb(process.pid)
    process.kill()
    process.join()
    return measured


def shared_panic(sessions: int, store: str) -> int:
    from bench.engine_children import shared_process_one_panics

    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=shared_process_one_panics, args=(store, sessions, child))
    process.start()
    parent.recv()
    process.join(30)
    return process.exitcode


def row(name: str, per_session: list[dict]) -> str:
    uss = statistics.median(m["uss"] for m in per_session)
    pss = statistics.median(m["pss"] for m in per_session)
    rss = statistics.median(m["rss"] for m in per_session)
    return (f"| {name} | {uss:.1f} MB | {pss:.1f} MB | {rss:.1f} MB | "
            f"{1024 / pss:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds the processes run before they are measured")
    args = parser.parse_args()
    from bench.engine_children import with_service_imports
    from sessions_app.engines.whatsmeow.child import child_main

    proxy = silent_proxy()
    with tempfile.TemporaryDirectory() as store:
        lean = session_processes(child_main, args.sessions, proxy, store, args.settle)
        heavy = session_processes(with_service_imports, args.sessions, proxy, store,
                                  args.settle)
        together = shared(args.sessions, proxy, store, args.settle)
        panic_exit = shared_panic(args.sessions, store)
    supervisor = memory_mb(os.getpid())
    per_shared = [{key: value / args.sessions for key, value in together.items()}]
    lines = [
        machine_speed(),
        "",
        f"{args.sessions} sessions, neonize 0.5.2, each client connecting through a local "
        "proxy that never answers (nothing leaves this machine). Per session:",
        "",
        "| layout | USS | PSS | RSS | sessions per GB (by PSS) |",
        "| --- | ---: | ---: | ---: | ---: |",
        row("one process per session, as it runs now", lean),
        row("one process per session, with the service's modules loaded (before)", heavy),
        row(f"{args.sessions} sessions' clients in one process", per_shared),
        "",
        f"This benchmark's own process (Django loaded, as `run_engine`): "
        f"{supervisor['rss']:.0f} MB RSS.",
        "",
        f"Why sessions do not share a process: with {args.sessions} clients in one process, "
        "one client asked for its account before connecting (a whatsmeow nil-pointer panic, "
        f"as a bug or an unexpected answer would cause) ended the process with exit code "
        f"{panic_exit}: every session in it would be lost at once, and the fencing and "
        "restart of one session would become those of all. neonize 0.5.2 has no way to catch "
        "a Go panic, so one process per session stays.",
    ]
    print(write_report("engine_memory", "Real-engine memory", lines).read_text())


if __name__ == "__main__":
    import django

    django.setup()
    main()
