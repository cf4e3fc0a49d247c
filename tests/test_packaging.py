"""The production install holds the service and nothing of its development tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_production_wheel_has_no_sandbox_devstack_testkit_or_bench(tmp_path: Path) -> None:
    # A copy of the tracked files: an in-tree build would leave build/ in the checkout.
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    source = tmp_path / "src"
    for name in tracked:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("*.whl")
    top_level = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"api", "workflows", "activities", "domain", "db", "worker.py"} <= top_level
    assert not top_level & {"sandbox", "devstack", "testkit", "bench", "tests"}
    assert any(n.startswith("db/migrations/") for n in zipfile.ZipFile(wheel).namelist())
