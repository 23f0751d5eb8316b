"""The benchmarks' steps still run (`bench/cost_steps.py`, which `bench/cost.py` counts): their
setup and each step at a tiny size, so that a change to the API or the pipeline that breaks a
benchmark fails here, not on the next day someone measures. No figure is asserted: speed is
measured by the benchmarks, never by tests. (`accept.py` needs wrk and `e2e.py` a worker of
its own; they are not run here.)"""

import os
import subprocess
import sys
from pathlib import Path

from bench.common import PG
from tests.support.http_server import LocalServer, Route

ROOT = Path(__file__).resolve().parents[1]


def _steps(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/cost_steps.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_cost_steps_prepare_and_run_the_floor_the_pipeline_and_paced_sends(tmp_path):
    database = f"whatsapp_bench_smoke_{os.getpid()}"
    env = {**os.environ, "BENCH_COST_DATABASE": database}
    try:
        with LocalServer() as receiver:
            receiver.routes["/hook"] = Route(status=200, body=b"ok")
            for scenario, phases in (("floor", [""]), ("paced", [""]),
                                     ("pipeline", ["sender", "receipts", "webhooks"])):
                state = str(tmp_path / f"{scenario}.json")
                done = _steps("prepare", scenario, "5", state, receiver.url("/hook"), env=env)
                assert done.returncode == 0, done.stderr[-3000:]
                for phase in phases:
                    # Each step checks its own work (every message sent, read, posted) and
                    # exits non-zero if it is not done.
                    done = _steps("run", state, *filter(None, [phase]), env=env)
                    assert done.returncode == 0, (scenario, phase, done.stderr[-3000:])
            statuses = [hit for hit in receiver.hits_for("/hook")
                        if b'"event":"message.status"' in hit.body]
        assert len(statuses) == 3 * 5  # the pipeline's: sent, delivered, read for each
    finally:
        subprocess.run(["psql", PG + "/postgres", "-q", "-c",
                        f"DROP DATABASE IF EXISTS {database}"], capture_output=True, check=False)
