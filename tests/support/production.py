"""The production setup of the README, really started: supervisord with deploy/supervisord.conf
(nginx in front of gunicorn's sync workers, a Celery worker, beat), against the test database,
on a free loopback port, with a queue and a Redis namespace of its own."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.servers import ROOT, database_url_of_test_db, free_port, stop_process_group
from tests.support.worker import wait_until

CONFIG = ROOT / "deploy" / "supervisord.conf"
BIN = Path(sys.executable).parent


@dataclass
class Stack:
    base: str
    env: dict[str, str]
    run_dir: Path

    def ctl(self, *args: str) -> str:
        """supervisorctl's answer (it exits non-zero for a process not running: not an error
        here)."""
        done = subprocess.run([str(BIN / "supervisorctl"), "-c", str(CONFIG), *args],
                              env=self.env, capture_output=True, text=True, timeout=30)
        return done.stdout

    def pid(self, program: str) -> int:
        return int(self.ctl("pid", program).strip() or 0)

    def running(self, program: str) -> bool:
        return "RUNNING" in self.ctl("status", program)

    def log(self, program: str) -> str:
        path = self.run_dir / f"{program}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextlib.contextmanager
def production_stack(extra_env: dict[str, str] | None = None,
                     web_workers: int = 2) -> Iterator[Stack]:
    # nginx's workers run as another user when started by root: the folder must be
    # traversable by it, which pytest's own temporary folders are not.
    run_dir = Path(tempfile.mkdtemp(prefix="wa-stack-", dir="/tmp"))
    run_dir.chmod(0o755)
    port = free_port()
    name = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/sbin",
        "RUN_DIR": str(run_dir), "PORT": f"127.0.0.1:{port}", "WEB_WORKERS": str(web_workers),
        "DATABASE_URL": database_url_of_test_db(),
        "CELERY_QUEUE": f"stack-{name}", "REDIS_NAMESPACE": f"stack-{name}",
        **(extra_env or {}),
    }
    process = subprocess.Popen([str(BIN / "supervisord"), "-c", str(CONFIG)], cwd=ROOT,
                               env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    stack = Stack(f"http://127.0.0.1:{port}", env, run_dir)
    try:
        def answering() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"supervisord exited: {stack.log('supervisord')}")
            try:
                return httpx.get(stack.base + "/v1/health", timeout=2,
                                 trust_env=False).status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(answering, timeout=60, interval=0.2)
            wait_until(lambda: stack.running("worker") and stack.running("beat"), timeout=30)
        except AssertionError:
            raise AssertionError(
                f"the stack did not come up: {stack.ctl('status')}\n{stack.log('front')}\n"
                f"{stack.log('web')}") from None
        yield stack
    finally:
        stack.ctl("shutdown")
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(60)
        stop_process_group(process, grace=5)
        shutil.rmtree(run_dir, ignore_errors=True)
