"""CPU cost in instructions, counted by valgrind's callgrind: mostly the same figure (within
1-2 %) whatever else the machine is doing and however fast it runs today (the throughput
benchmarks drift by 20-30 % within an hour here). On 2026-12-01 some runs of the same code
came out about 0.4 M apart in the send and receipts rows, cause unknown: read a small change
from several runs of each version.

Counts the service's own Python process only (not PostgreSQL, Redis or a server in front):
- `bare`: a bare DRF POST endpoint through the WSGI application (the accept path's ceiling),
- `floor`: the durable floor (`bench/urls.py`): the bare endpoint plus one committed INSERT and
  two Redis round trips, the I/O a send cannot do without,
- `send`: `POST /v1/messages/text` through the WSGI application (key, limits, quota, insert,
  answer, the sender's wake-up),
- `pipeline`: what the Celery tasks do for one accepted message (the sender's run with the
  sandbox engine, the receipts `delivered` and `read` consumed, three `message.status`
  webhook posts to a local receiver), the task functions called directly, each of the three
  phases counted in its own process,
- `floor-pipeline`: the same three phases done by the end-to-end floor
  (`bench/pipeline_floor.py`: the I/O the service's promises need, with little Python), so
  that the pipeline's rows can be read against what that I/O costs in instructions,
- `paced`: the sender's runs when sends are paced (SEND_MIN_INTERVAL_SECONDS, as with the real
  engine): one message per run, which then schedules its continuation,
- `trickle`: a light load, one message at a time through every stage (the send request, the
  sender's run, the receipts, the webhook run) in one process: what each stage's run costs
  beyond its messages, which a batch spreads over up to a hundred.

Beside each count, PostgreSQL's own counts of the same runs (WAL records, rows inserted and
updated, commits): the deterministic part of the database's work, which the instructions
leave out. They count the whole server's WAL: run nothing else against it meanwhile.

Each scenario runs twice, with a small and a large count (`bench/cost_steps.py`), and the
figure is the difference divided by the difference in count: start-up and imports cancel out.
Writes bench/results/cost.md. Takes about twenty minutes (more on a slow day).

    .venv/bin/python bench/cost.py [--scenarios bare,floor,send,pipeline,paced,trickle]
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, pg_counters, write_report
from bench.cost_steps import DATABASE, PHASES
from bench.e2e import Receiver

SMALL, LARGE = 100, 400  # requests or messages per counted run
# A trickled message costs ten times a batched one: fewer of them count as well.
COUNTS = {"trickle": (20, 80)}
UNIT = {"bare": "request", "floor": "request", "send": "request", "pipeline": "message",
        "floor-pipeline": "message", "paced": "message", "trickle": "message"}
# Scenarios counted phase by phase, each phase in its own process, and the prefix of their rows.
PHASED = {"pipeline": "", "floor-pipeline": "floor-"}


def instructions(scenario: str, n: int, receiver_url: str
                 ) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Instructions counted for n requests or messages: {scenario: count}, or for the
    pipeline {phase: count}, each phase in its own process; and PostgreSQL's counts of the
    same runs (`pg_counters`), {phase: {counter: count}}."""
    steps = str(ROOT / "bench" / "cost_steps.py")
    counted: dict[str, int] = {}
    database_work: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as folder:
        state = str(Path(folder) / "state.json")
        subprocess.run([sys.executable, steps, "prepare", scenario, str(n), state,
                        receiver_url], cwd=ROOT, check=True)
        for phase in PHASES if scenario in PHASED else ("",):
            before = pg_counters(DATABASE)
            done = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/out",
                 sys.executable, steps, "run", state, *filter(None, [phase])],
                cwd=ROOT, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"{scenario} {phase} failed:\n{done.stdout}\n"
                                 f"{done.stderr[-3000:]}")
            part = PHASED[scenario] + phase if phase else scenario
            counted[part] = int(re.search(r"Collected : (\d+)", done.stderr).group(1))
            after = pg_counters(DATABASE)
            database_work[part] = {name: after[name] - before[name] for name in after}
    return counted, database_work


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios",
                        default="bare,floor,send,pipeline,floor-pipeline,paced,trickle")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    receiver = Receiver()
    figures: dict[str, float] = {}  # scenario or pipeline phase: instructions per unit
    database: dict[str, dict[str, float]] = {}  # the same: PostgreSQL's counts per unit
    for scenario in args.scenarios.split(","):
        small, large = COUNTS.get(scenario, (SMALL, LARGE))
        (low, low_db), (high, high_db) = (instructions(scenario, n, receiver.url)
                                          for n in (small, large))
        for part in high:
            figures[part] = (high[part] - low[part]) / (large - small)
            database[part] = {name: (high_db[part][name] - low_db[part][name]) / (large - small)
                              for name in high_db[part]}
            print(f"{part}: {figures[part] / 1e6:.3f} M instructions, "
                  + ", ".join(f"{value:.2f} {name}" for name, value in database[part].items())
                  + f" per {UNIT[scenario]}", flush=True)
        if scenario in PHASED:
            parts = [PHASED[scenario] + phase for phase in PHASES]
            figures[scenario] = sum(figures[part] for part in parts)
            database[scenario] = {name: sum(database[part][name] for part in parts)
                                  for name in database[parts[0]]}
    rows = [("bare", "a bare DRF POST endpoint (the ceiling)", "request"),
            ("floor", "the durable floor: the bare endpoint plus one committed INSERT and two "
                      "Redis round trips", "request"),
            ("send", "`POST /v1/messages/text`", "request"),
            ("sender", "pipeline: the sender's run (claim, sandbox send, `sent`)", "message"),
            ("receipts", "pipeline: the receipts `delivered` and `read` consumed", "message"),
            ("webhooks", "pipeline: three `message.status` webhook posts", "message"),
            ("pipeline", "pipeline, all three phases", "message"),
            ("floor-sender", "the end-to-end floor (`pipeline_floor.py`): its sender", "message"),
            ("floor-receipts", "the end-to-end floor: its receipts", "message"),
            ("floor-webhooks", "the end-to-end floor: its three webhook posts", "message"),
            ("floor-pipeline", "the end-to-end floor, all three phases", "message"),
            ("paced", "a paced send: a sender run for one message, its continuation "
                      "scheduled (SEND_MIN_INTERVAL_SECONDS)", "message"),
            ("trickle", "a message at light load: accepted, sent, its receipts consumed and "
                        "its webhooks posted before the next is accepted (every stage's run "
                        "for one message)", "message")]
    lines = [
        "Instructions executed by the service's Python process (valgrind callgrind), per "
        f"request or message: the difference between runs of {SMALL} and {LARGE} (the trickle: "
        f"{COUNTS['trickle'][0]} and {COUNTS['trickle'][1]}), so start-up cancels out. Each "
        "pipeline phase runs in its own process, after the one before it. PostgreSQL, Redis "
        "and the HTTP server are not counted.",
        "",
        "| what | M instructions | per |",
        "| --- | ---: | --- |",
        *[f"| {label} | {figures[name] / 1e6:.2f} | {unit} |"
          for name, label, unit in rows if name in figures],
    ]
    columns = ("wal records", "rows inserted", "rows updated", "commits")
    lines += [
        "",
        "PostgreSQL's work for the same runs, counted by PostgreSQL (`pg_stat_wal`, "
        "`pg_stat_database`), per request or message, the same difference: WAL records (one "
        "for each row and each index entry written, so an index that a change must update "
        "shows here), rows inserted and updated, and commits. Its CPU is not counted; "
        "these counts are the part of it that the schema and the statements decide.",
        "",
        "| what | " + " | ".join(columns) + " | per |",
        "| --- | " + " | ".join("---:" for _ in columns) + " | --- |",
        *[f"| {label} | " + " | ".join(f"{database[name][column]:.2f}" for column in columns)
          + f" | {unit} |" for name, label, unit in rows if name in database],
    ]
    if "bare" in figures and "send" in figures:
        lines += ["", f"send / bare: **{figures['send'] / figures['bare']:.2f}** times the "
                      "instructions of the bare endpoint."]
    if "floor-pipeline" in figures and "pipeline" in figures:
        lines += ["", "pipeline / end-to-end floor: **"
                  f"{figures['pipeline'] / figures['floor-pipeline']:.2f}** times the floor's "
                  "instructions per message (" + ", ".join(
                      f"{phase} {figures[phase] / figures['floor-' + phase]:.2f}"
                      for phase in PHASES) + ")."]
    if "floor" in figures and "send" in figures:
        lines += ["", f"send - floor: **{(figures['send'] - figures['floor']) / 1e6:.2f} M**: "
                      "what a send's Python costs above the I/O it cannot do without."]
    path = write_report("cost", "CPU cost in instructions", lines)
    print(path.read_text())


if __name__ == "__main__":
    main()
