"""What a saga costs in Temporal, read from histories recorded on a real stack
(tests/histories): the counter itself, and the budgets a captured checkout and a refund keep
(issue 15: ≤ 10 actions and ≤ 30 events per captured checkout, ≤ 6 actions per refund). The
benchmark reads the same figures from the histories of its own run."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from testkit.history_shape import Shape, shape_of

HISTORIES = Path(__file__).parent / "histories"


def recorded(name: str) -> Shape:
    return shape_of(WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text()))


def test_a_captured_stripe_checkout_is_counted_event_by_event() -> None:
    shape = recorded("checkout_stripe_captured")
    # update-with-start; the risk assessment (a local activity) and create (an activity,
    # writing its ledger row) in the first task; the deadline timer; the authorization signal;
    # the risk assessment of the authorization, the merchant's confirmation and the ledger
    # steps (three local activities in one workflow task); capture (an activity, writing the
    # capture); one upsert of the final status, with its memo. The gateway's echo of the
    # capture is not signalled (api.event_routing).
    assert (shape.activities, shape.local_activities, shape.signals, shape.updates) == (2, 4, 1, 1)
    assert (shape.timers, shape.upserts, shape.children, shape.marker_tasks) == (1, 1, 0, 2)
    assert shape.actions == 1 + 2 + 1 + 1 + 1 + 2 + 1


@pytest.mark.parametrize("gateway", ["stripe", "razorpay"])
def test_a_captured_checkout_keeps_its_budget(gateway: str) -> None:
    shape = recorded(f"checkout_{gateway}_captured")
    assert shape.actions <= 10 and shape.events <= 30, shape


def test_a_refund_keeps_its_budget_and_a_patch_costs_no_action() -> None:
    own = recorded("refunds")
    assert own.actions <= 6, own
    assert own.upserts == 1  # the final status; the patch's TemporalChangeVersion is free
    before = recorded("refunds_before_fewer_actions")
    assert before.actions > own.actions and before.memo_changes > own.memo_changes


def test_a_signal_with_start_is_one_action() -> None:
    observed = recorded("refunds_1")  # started by the dashboard refund's webhook
    assert observed.signal_with_start and observed.signals == 1
    paid = observed.activity_attempts + observed.marker_tasks + observed.upserts
    assert observed.actions == 1 + paid  # the start and its signal: one
