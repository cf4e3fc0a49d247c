"""Recorded histories of every workflow's main paths (tests/histories, made by
`python -m tests.histories.record`) must replay on today's code: a change that would break
running workflows fails here.

Refunds and disputes auto-upgrade to a new build: their new behaviour goes behind
`workflow.patched`, and the histories recorded before it stay beside the new ones (e.g.
`refunds_before_fewer_actions.json`). Checkouts and reconciliations are pinned to the build that
started them, so a change of their shape is recorded again in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from domain import names
from testkit.replayer import worker_replayer

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
TEXTS = {p.stem: p.read_text() for p in HISTORIES}


def test_every_workflow_has_recorded_histories() -> None:
    recorded = {
        json.loads(text)["events"][0]["workflowExecutionStartedEventAttributes"]["workflowType"][
            "name"
        ]
        for text in TEXTS.values()
    }
    assert {
        names.CHECKOUT_WORKFLOW,
        names.REFUND_WORKFLOW,
        names.RECONCILE_WORKFLOW,
        names.DISPUTE_WORKFLOW,
        names.PAYOUT_WORKFLOW,
    } <= recorded


@pytest.mark.parametrize("name", sorted(TEXTS))
async def test_recorded_history_replays_without_nondeterminism(name: str) -> None:
    history = WorkflowHistory.from_json(name, TEXTS[name])
    replayer = worker_replayer()
    await replayer.replay_workflow(history)
