"""Start the real service in a separate process (gunicorn on loopback) for tests that need
several processes or a broken dependency. Bounded waits; always stopped."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn_server(env: dict[str, str], workers: int = 2) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {process.stdout.read().decode()[-2000:]}")
            try:
                httpx.get(base + "/v1/nothing", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start within 30 s") from None
                time.sleep(0.1)
        yield base
    finally:
        stop_process_group(process, grace=10)


def stop_process_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process and its children, SIGKILL them if they outlive `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def database_url_of_test_db() -> str:
    """The URL of the database this test process uses (pytest-django's test database)."""
    from django.db import connection

    s = connection.settings_dict
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, to stop and start."""

    def __init__(self, directory, *, append_only: bool = False) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # With its append-only file (as production's Redis runs), a restart keeps the data.
        self.persistence = (["--appendonly", "yes", "--appendfsync", "always"] if append_only
                            else ["--appendonly", "no"])

    def start(self) -> None:
        subprocess.run([shutil.which("redis-server"), "--port", str(self.port), "--bind",
                        "127.0.0.1", "--save", "", *self.persistence, "--daemonize", "yes",
                        "--dir", str(self.directory)], check=True, capture_output=True)
        wait_until(lambda: subprocess.run(
            ["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout.strip()
            == b"PONG", timeout=10)

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
                       capture_output=True)
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "ping"],
                                          capture_output=True).returncode != 0, timeout=10)


def wait_until(condition: Callable[[], object], timeout: float = 20, interval: float = 0.1):
    """Poll until `condition()` is truthy (bounded); returns its value or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
