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
from temporalio.worker import Replayer

from domain import names
from observability import ActivityLogInterceptor
from settings import development_settings
from temporal_client import connect_options
from worker import WORKFLOWS

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
    replayer = Replayer(
        workflows=WORKFLOWS,
        # As the worker decodes: through the encryption codec, which lets these histories'
        # unsealed payloads through.
        data_converter=connect_options(development_settings(_env_file=None))["data_converter"],
        interceptors=[ActivityLogInterceptor()],
    )
    await replayer.replay_workflow(history)
