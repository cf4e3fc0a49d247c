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

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Replays a recorded checkout (two loads of the workflow: one per replay) and prints which
# workflow modules were compiled from source meanwhile.
SCRIPT = """
import asyncio, importlib._bootstrap_external as loaders, json, sys
from pathlib import Path
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from settings import development_settings
from temporal_client import connect_options
import worker

if sys.argv[1] == "compile":
    assert worker.compile_workflow_code()
compiled = []
source_to_code = loaders.SourceLoader.source_to_code

def spy(self, data, path, *args, **kwargs):
    compiled.append(str(path))
    return source_to_code(self, data, path, *args, **kwargs)

loaders.SourceLoader.source_to_code = spy
text = Path("tests/histories/checkout_stripe_captured.json").read_text()
replayer = Replayer(
    workflows=worker.WORKFLOWS,
    data_converter=connect_options(development_settings(_env_file=None))["data_converter"],
)
for n in range(2):
    asyncio.run(replayer.replay_workflow(WorkflowHistory.from_json(f"wf-{n}", text)))
print(json.dumps([p for p in compiled if "workflows" in Path(p).parts]))
"""


def compiled_while_replaying(mode: str, cache: Path) -> list[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    compiled: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return compiled


@pytest.mark.parametrize("mode", ["compile", "as-is"])
def test_workflow_loads_compile_source_only_without_the_workers_bytecode(
    mode: str, tmp_path: Path
) -> None:
    compiled = compiled_while_replaying(mode, tmp_path)
    if mode == "compile":
        assert compiled == []
    else:  # what the worker did before: the checkout's source compiled at every load
        assert compiled.count(str(ROOT / "workflows" / "checkout.py")) >= 2
