"""The workflow sandbox imports the workflow modules afresh for every workflow it loads; the
worker writes their bytecode first, so that no load compiles their source (which cost a third of
the worker's CPU in the bench's deadline storm, with PYTHONDONTWRITEBYTECODE set as the image
sets it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Replays a recorded checkout twice (a load of the workflow each), first as the modules are, then
# after the worker's compile step, and prints which workflow modules each round compiled.
SCRIPT = """
import asyncio, importlib._bootstrap_external as loaders, json
from pathlib import Path
from temporalio.client import WorkflowHistory
from testkit.replayer import worker_replayer
import worker

compiled = []
source_to_code = loaders.SourceLoader.source_to_code

def spy(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return source_to_code(self, data, path, *args, **kwargs)

loaders.SourceLoader.source_to_code = spy
text = Path("tests/histories/checkout_stripe_captured.json").read_text()
replayer = worker_replayer()
rounds = {}
for name in ("as_is", "compiled"):
    if name == "compiled":
        assert worker.compile_workflow_code()
    compiled.clear()
    for n in range(2):
        asyncio.run(replayer.replay_workflow(WorkflowHistory.from_json(f"{name}-{n}", text)))
    rounds[name] = [p for p in compiled if "workflows" in Path(p).parts]
print(json.dumps(rounds))
"""


def test_no_workflow_load_compiles_source_after_the_workers_compile_step(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    rounds = json.loads(result.stdout.strip().splitlines()[-1])
    # what the worker did before: the checkout's source compiled at every load
    assert rounds["as_is"].count(str(ROOT / "workflows" / "checkout.py")) >= 2
    assert rounds["compiled"] == []
