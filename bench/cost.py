"""CPU cost in instructions, counted by valgrind's callgrind: the same figure whatever else the
machine is doing and however fast it runs today, so a change's effect can be read from one
run of each version (the throughput benchmarks drift by 20-30 % within an hour here).

Counts the service's own Python process only (not PostgreSQL, Redis or a server in front):
- `bare`: a bare DRF POST endpoint through the WSGI application (the accept path's ceiling),
- `send`: `POST /v1/messages/text` through the WSGI application (key, limits, quota, insert,
  answer, the sender's wake-up),
- `pipeline`: what the Celery tasks do for one accepted message (the sender's run with the
  sandbox engine, the receipts `delivered` and `read` consumed, three `message.status`
  webhook posts to a local receiver), the task functions called directly.

Each scenario runs twice, with a small and a large count (`bench/cost_steps.py`), and the
figure is the difference divided by the difference in count: start-up and imports cancel out.
Writes bench/results/cost.md. Takes about five minutes.

    .venv/bin/python bench/cost.py [--scenarios bare,send,pipeline]
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, write_report
from bench.e2e import Receiver

COUNTS = {"bare": (100, 400), "send": (100, 400), "pipeline": (100, 400)}
UNIT = {"bare": "request", "send": "request", "pipeline": "message"}


def instructions(scenario: str, n: int, receiver_url: str) -> int:
    steps = str(ROOT / "bench" / "cost_steps.py")
    with tempfile.TemporaryDirectory() as folder:
        state = str(Path(folder) / "state.json")
        subprocess.run([sys.executable, steps, "prepare", scenario, str(n), state,
                        receiver_url], cwd=ROOT, check=True)
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={folder}/callgrind.out",
             sys.executable, steps, "run", state],
            cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{scenario} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return int(re.search(r"Collected : (\d+)", done.stderr).group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenarios", default="bare,send,pipeline")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is missing: apt-get install valgrind")
    receiver = Receiver()
    figures: dict[str, float] = {}
    for scenario in args.scenarios.split(","):
        small, large = COUNTS[scenario]
        counted = [instructions(scenario, n, receiver.url) for n in (small, large)]
        figures[scenario] = (counted[1] - counted[0]) / (large - small)
        print(f"{scenario}: {figures[scenario] / 1e6:.3f} M instructions per "
              f"{UNIT[scenario]}", flush=True)
    lines = [
        "Instructions executed by the service's Python process (valgrind callgrind), per "
        "request or message: the difference between a run of "
        + " and ".join(f"{COUNTS[s][0]} and {COUNTS[s][1]} {UNIT[s]}s ({s})" for s in figures)
        + ", so start-up cancels out. PostgreSQL, Redis and the HTTP server are not counted.",
        "",
        "| scenario | M instructions | per |",
        "| --- | ---: | --- |",
        *[f"| {scenario} | {value / 1e6:.2f} | {UNIT[scenario]} |"
          for scenario, value in figures.items()],
    ]
    if "bare" in figures and "send" in figures:
        lines += ["", f"send / bare: **{figures['send'] / figures['bare']:.2f}** times the "
                      "instructions of the bare endpoint."]
    path = write_report("cost", "CPU cost in instructions", lines)
    print(path.read_text())


if __name__ == "__main__":
    main()
