"""`python -m bench.faults`: the fault campaign. Hundreds of concurrent checkouts (and refunds and
disputes of them) run over HTTP while one kind of fault at a time is injected; then invariants are
checked against the sandbox's money-movement log and our ledger, and printed as figures."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import start_stack
from devstack.stack import ROOT, Stack
from testkit.campaign import FAULTS, Campaign, Invariants, check_invariants, plan
from testkit.shop import Endpoints, Shop, StatusWatcher, connect_dev_temporal

RESULTS = Path(__file__).resolve().parent / "results"


async def campaign(
    stack: Stack, faults: list[str], per_round: int, seed: int, *, refunds: bool = True
) -> tuple[list[dict[str, Any]], Invariants]:
    since = datetime.now(UTC)
    temporal = await connect_dev_temporal(stack.temporal_address)
    async with Shop(Endpoints.of(stack)) as shop, StatusWatcher(shop.pool, 0.1) as watcher:
        c = Campaign(stack, shop, temporal, seed)
        rounds, everything = [], []
        for fault in faults:
            sagas = plan(c.rng, per_round, refunds=refunds)
            everything += sagas
            print(f"round {fault}: {len(sagas)} sagas…", flush=True)
            rounds.append(await c.round(watcher, fault, sagas))
            print(f"  {rounds[-1]}", flush=True)
        await asyncio.sleep(12)  # the inbox relay's minimum age: what it owes is delivered
        invariants = await check_invariants(shop, temporal, everything, since)
    return rounds, invariants


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__)
    parser.add_argument("--per-round", type=int, default=60, help="sagas per fault round")
    parser.add_argument(
        "--faults", default=",".join(f for f in FAULTS if f != "answers_lost"),
        help=f"comma-separated, in order, among {', '.join(FAULTS)}",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--no-refunds", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "faults")
    args = parser.parse_args()
    faults = [f for f in args.faults.split(",") if f]
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    shutil.rmtree(args.data_dir, ignore_errors=True)
    print(f"starting the stack in {args.data_dir}…", flush=True)
    stack = start_stack(args.data_dir)
    began = time.perf_counter()
    try:
        rounds, inv = asyncio.run(
            campaign(stack, faults, args.per_round, args.seed, refunds=not args.no_refunds)
        )
    finally:
        stack.stop()
    report = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - began, 1),
        "rounds": rounds,
        "invariants": asdict(inv) | {"money_lost_or_doubled": inv.money_lost_or_doubled},
        "violations": inv.violations(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["invariants"], indent=2))
    print("violations:", report["violations"] or "none")
    raise SystemExit(1 if report["violations"] else 0)


if __name__ == "__main__":
    main()
