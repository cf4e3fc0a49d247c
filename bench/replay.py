"""`python -m bench.replay`: what one workflow load costs the worker. Each time the worker loads a
workflow (a new run, or a replay after its cache evicted the workflow) the sandbox imports the
workflow modules afresh and replays the history; a deadline storm is hundreds of these. This
replays the recorded captured Stripe checkout (tests/histories) `--replays` times in a fresh
interpreter, with and without the workflow modules' bytecode on disk (worker.compile_workflow_code;
PYTHONDONTWRITEBYTECODE is set, as in the image), alternating the two `--rounds` times so that a
change of the machine's speed falls on both alike. Prints CPU ms per load and writes
bench/results/replay.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cores

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HISTORY = ROOT / "tests" / "histories" / "checkout_stripe_captured.json"
COMPILE = "import sys, worker; sys.exit(not worker.compile_workflow_code())"


async def replay(count: int) -> float:
    """CPU ms per load and replay of the recorded checkout, after one warm-up load."""
    from temporalio.client import WorkflowHistory

    from testkit.replayer import worker_replayer

    text = HISTORY.read_text()
    replayer = worker_replayer()
    await replayer.replay_workflow(WorkflowHistory.from_json("warm-up", text))
    began = time.process_time()
    for n in range(count):
        await replayer.replay_workflow(WorkflowHistory.from_json(f"load-{n}", text))
    return (time.process_time() - began) / count * 1000


def measure(bytecode: bool, count: int, cache: Path) -> float:
    """One fresh interpreter; `cache` is its PYTHONPYCACHEPREFIX (holding the workflow modules'
    bytecode or nothing)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(cache)}
    if bytecode:
        subprocess.run(
            [sys.executable, "-c", COMPILE],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "bench.replay", "--child", str(count)],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replays", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(asyncio.run(replay(args.child)))
        return
    runs: dict[str, list[float]] = {"without_bytecode": [], "with_bytecode": []}
    with tempfile.TemporaryDirectory() as empty, tempfile.TemporaryDirectory() as compiled:
        for _ in range(args.rounds):
            runs["without_bytecode"].append(round(measure(False, args.replays, Path(empty)), 1))
            runs["with_bytecode"].append(round(measure(True, args.replays, Path(compiled)), 1))
    report = {
        "history": str(HISTORY.relative_to(ROOT)),
        "replays_per_run": args.replays,
        "machine": {"cores": cores(), "python": sys.version.split()[0]},
        "cpu_ms_per_load": runs,
        "median_cpu_ms_per_load": {k: round(statistics.median(v), 1) for k, v in runs.items()},
    }
    median = report["median_cpu_ms_per_load"]
    saved = 1 - median["with_bytecode"] / median["without_bytecode"]
    report["saved_by_bytecode"] = round(saved, 3)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, values in runs.items():
        print(f"{name}: {values} CPU ms per load (median {median[name]})")
    print(f"the bytecode saves {saved:.0%} of a load; written: {RESULTS / 'replay.json'}")


if __name__ == "__main__":
    main()
