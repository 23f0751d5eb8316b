"""The benchmarks still run: each script's setup and its steps at a tiny size, so that a change
to the API or the pipeline that breaks a benchmark fails here, not on the next day someone
measures. No figure is asserted: speed is measured by the benchmarks, never by tests. The runs
get a database of their own (`BENCH_DATABASE`, dropped after) and write their reports to a
temporary folder (`BENCH_RESULTS_DIR`). (`accept.py` and `front.py` need wrk: not run here.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import PG, pg_counters
from tests.support.http_server import LocalServer, Route
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bench_env(tmp_path):
    database = f"whatsapp_bench_smoke_{os.getpid()}"
    yield {**os.environ, "BENCH_DATABASE": database, "BENCH_RESULTS_DIR": str(tmp_path)}
    for name in (database, f"{database}_cost"):
        subprocess.run(["psql", PG + "/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {name}"],
                       capture_output=True, check=False)


def _run(script: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"bench/{script}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_cost_steps_prepare_and_run_the_floors_the_pipeline_paced_sends_and_a_trickle(
        tmp_path, bench_env):
    with LocalServer() as receiver:
        receiver.routes["/hook"] = Route(status=200, body=b"ok")
        for scenario, phases in (("floor", [""]), ("paced", [""]), ("trickle", [""]),
                                 ("pipeline", ["sender", "receipts", "webhooks"]),
                                 ("floor-pipeline", ["sender", "receipts", "webhooks"])):
            state = str(tmp_path / f"{scenario}.json")
            done = _run("cost_steps.py", "prepare", scenario, "5", state,
                        receiver.url("/hook"), env=bench_env)
            assert done.returncode == 0, done.stderr[-3000:]
            for phase in phases:
                before = pg_counters(f"{bench_env['BENCH_DATABASE']}_cost")
                # Each step checks its own work (every message sent, read, posted) and exits
                # non-zero if it is not done.
                done = _run("cost_steps.py", "run", state, *filter(None, [phase]), env=bench_env)
                assert done.returncode == 0, (scenario, phase, done.stderr[-3000:])
                if phase == "sender":  # what bench/cost.py reads of PostgreSQL's own counts
                    work = pg_counters(f"{bench_env['BENCH_DATABASE']}_cost")
                    assert work["rows updated"] - before["rows updated"] >= 2 * 5  # sending, sent
                    # history (not in the floor), event, delivery
                    inserted = 2 if scenario == "floor-pipeline" else 3
                    assert work["rows inserted"] - before["rows inserted"] >= inserted * 5
                    assert work["commits"] > before["commits"]
                    assert work["wal records"] > before["wal records"]
        statuses = [hit for hit in receiver.hits_for("/hook")
                    if b'"event":"message.status"' in hit.body]
    # The pipeline's, the trickle's and the end-to-end floor's: sent, delivered, read for each
    # of their five.
    assert len(statuses) == 3 * 3 * 5


def _e2e_run_of_32(tmp_path, bench_env, *args: str) -> str:
    """Run `e2e.py` with 32 messages; check that every one was seen through; its report."""
    done = _run("e2e.py", *args, "--messages", "32", "--sessions", "2", "--port",
                str(free_port()), env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / ("e2e-floor.md" if "--floor" in args else "e2e.md")).read_text()
    assert "This machine at the start of the run: a Python loop of ten million" in report
    assert "| accepted | 32 in " in report
    assert "| `sent` webhooks received | 32 |" in report
    assert "| finished | yes in " in report
    assert "| every post received | yes, " in report
    return report


def test_the_end_to_end_benchmark_runs_its_servers_and_sees_every_message_through(
        tmp_path, bench_env):
    committed = (ROOT / "bench" / "results" / "e2e.md").read_text()
    _e2e_run_of_32(tmp_path, bench_env)
    assert (ROOT / "bench" / "results" / "e2e.md").read_text() == committed  # not overwritten


def test_the_end_to_end_floor_sees_every_message_through_and_posts_each_of_its_steps(
        tmp_path, bench_env):
    report = _e2e_run_of_32(tmp_path, bench_env, "--floor")
    assert "the end-to-end floor in the service's place" in report
    # What the floor keeps, as the service keeps it: each message read, three events and three
    # posted deliveries, each with its attempt.
    database = f"{PG}/{bench_env['BENCH_DATABASE']}"
    counts = subprocess.run(
        ["psql", database, "-Atc",
         "SELECT (SELECT count(*) FROM floor_message WHERE status = 'read'), "
         "(SELECT count(*) FROM floor_event), "
         "(SELECT count(*) FROM floor_delivery WHERE status = 'succeeded'), "
         "(SELECT count(DISTINCT delivery_id) FROM floor_attempt)"],
        capture_output=True, text=True, check=True).stdout.strip()
    assert counts == "32|96|96|96"


def test_the_engine_benchmarks_measure_recovery_and_memory(bench_env, tmp_path):
    """The real engine's: recovery through real engine hosts around the fake WhatsApp (two
    sessions), and the memory of session processes (one, briefly)."""
    done = _run("engine_recovery.py", "--sessions", "2", env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "engine_recovery.md").read_text()
    assert "host killed (-9)" in report and "network drop" in report
    done = _run("engine_memory.py", "--sessions", "1", "--settle", "3", env=bench_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sessions per GB" in (tmp_path / "engine_memory.md").read_text()
