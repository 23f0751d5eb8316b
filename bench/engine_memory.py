"""Memory of the real engine: RSS of idle session processes (neonize/whatsmeow loaded, its
connection attempt refused by a local proxy: nothing leaves this machine) and of the
supervisor. Writes bench/results/engine_memory.md.

    .venv/bin/python bench/engine_memory.py [--sessions 5]
"""

import argparse
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

from bench.common import REDIS, write_report


def refusing_proxy() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)

    def serve():
        while True:
            conn, _ = sock.accept()
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5)
    args = parser.parse_args()
    import redis

    from sessions_app.engines.whatsmeow import protocol
    from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor

    with tempfile.TemporaryDirectory() as store:
        supervisor = EngineSupervisor(
            redis_client=redis.Redis.from_url(REDIS), namespace=f"bench-{uuid.uuid4().hex[:6]}",
            stream="bench-engine-events", redis_url=REDIS, store_dir=Path(store),
            proxy_url=refusing_proxy())
        for _ in range(args.sessions):
            supervisor.handle(protocol.command("start", f"ses_{uuid.uuid4().hex[:12]}").encode())
        time.sleep(8)  # loaded, dial refused, idle
        children = [rss_mb(c.process.pid) for c in supervisor.children.values()
                    if c.process.is_alive()]
        parent = rss_mb(os.getpid())
        for session_id in list(supervisor.children):
            supervisor._stop_child(session_id)
    lines = [
        f"{args.sessions} idle session processes (spawned, neonize 0.5.2 loaded, connection "
        "refused by a local proxy) under one supervisor.",
        "",
        "| process | RSS |",
        "| --- | ---: |",
        f"| session process, median of {len(children)} | {statistics.median(children):.0f} MB |",
        f"| session process, max | {max(children):.0f} MB |",
        f"| supervisor (`run_engine`, Django loaded) | {parent:.0f} MB |",
    ]
    print(write_report("engine_memory", "Real-engine memory", lines).read_text())


if __name__ == "__main__":
    import django

    django.setup()
    main()
