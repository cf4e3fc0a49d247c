"""The reconciler settles what webhooks and lost answers left open, and flags what it must not
touch; its own activities are doubles, the sagas it signals are real."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.reconcile import payment_disagreement
from domain.checkout import Gateway, GatewayPaymentRef, PaymentStatus
from domain.reconcile import (
    Candidate,
    CheckResult,
    Flag,
    ObjectKind,
    ReconcileReport,
    ReconcileRequest,
)
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.doubles import AMOUNT, FakeGateway, checkout_request, start, wait_for
from workflows.checkout import CheckoutWorkflow
from workflows.policies import GATEWAY_RETRY
from workflows.reconcile import ReconcileWorkflow
from workflows.refund import RefundWorkflow


class FakeReconciler:
    """The ledger's candidates and the flags, in memory; the gateway is the checkout's fake."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.candidates: list[Candidate] = []
        self.flags: list[Flag] = []
        self.runs: list[ReconcileReport] = []

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="find_reconciliation_candidates")
        async def find(request: ReconcileRequest) -> list[Candidate]:
            return self.candidates

        @activity.defn(name="check_against_gateway")
        async def check(candidate: Candidate) -> CheckResult:
            payment = self.gateway.payment()
            return CheckResult(
                candidate=candidate,
                gateway_status=payment.status.value,
                disagreement=payment_disagreement(candidate, payment),
            )

        @activity.defn(name="flag_disagreement")
        async def flag(flag: Flag) -> None:
            self.flags.append(flag)

        @activity.defn(name="record_reconciliation_run")
        async def record(report: ReconcileReport) -> None:
            self.runs.append(report)

        return [find, check, flag, record]


def candidate(workflow_id: str, ledger_status: str, *, closed: bool = False) -> Candidate:
    return Candidate(
        kind=ObjectKind.PAYMENT,
        object_id="pay_x",
        payment_id="pay_x",
        workflow_id=workflow_id,
        gateway=Gateway.STRIPE,
        ledger_status=ledger_status,
        amount=AMOUNT,
        currency="USD",
        payment_ref=GatewayPaymentRef(gateway=Gateway.STRIPE, gateway_payment_id="pi_1"),
        closed=closed,
    )


def worker(client: Client, fake: FakeGateway, reconciler: FakeReconciler, queue: str) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[CheckoutWorkflow, RefundWorkflow, ReconcileWorkflow],
        activities=[*fake.activities(), *reconciler.activities()],
        deployment_config=TEST_DEPLOYMENT,
    )


async def reconcile(client: Client, queue: str) -> ReconcileReport:
    return await client.execute_workflow(
        ReconcileWorkflow.run,
        ReconcileRequest(),
        id=f"reconcile-{uuid.uuid4().hex}",
        task_queue=queue,
    )


async def test_a_capture_stuck_unknown_looks_again_on_its_own_timer_without_capturing_twice(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, queue = time_skipping_env.client, f"reconcile-{uuid.uuid4().hex}"
    fake = FakeGateway()
    fake.lose_capture_answers = 100  # applied, then every answer lost until retries run out
    reconciler = FakeReconciler(fake)
    async with worker(client, fake, reconciler, queue):
        handle = await start(client, checkout_request(), queue)
        await wait_for(handle, lambda s: s.gateway_payment_id is not None)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        result = await handle.result()  # no webhook, no reconciler: the saga's own timer looks

    steps = [step.step for step in result.history]
    assert steps[-2:] == ["capture_outcome_unknown", "captured"]
    assert result.status is PaymentStatus.CAPTURED
    assert result.amount_captured == AMOUNT
    assert len(fake.captures) == GATEWAY_RETRY.maximum_attempts  # it looked; no capture again
    assert fake.releases == [] and fake.refunds == []
    assert reconciler.runs == []


async def test_an_authorization_whose_webhook_never_came_is_picked_up(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, queue = time_skipping_env.client, f"reconcile-{uuid.uuid4().hex}"
    fake = FakeGateway()
    reconciler = FakeReconciler(fake)
    async with worker(client, fake, reconciler, queue):
        handle = await start(client, checkout_request(), queue)
        await wait_for(handle, lambda s: s.gateway_payment_id is not None)
        fake.customer_pays()  # ...and the webhook is lost
        reconciler.candidates = [candidate(handle.id, "created")]
        report = await reconcile(client, queue)
        result = await handle.result()

    assert report.changed == 1
    assert result.status is PaymentStatus.CAPTURED
    assert len(fake.captures) == 1


async def test_agreeing_objects_are_left_alone(time_skipping_env: WorkflowEnvironment) -> None:
    client, queue = time_skipping_env.client, f"reconcile-{uuid.uuid4().hex}"
    fake = FakeGateway()  # the gateway says created, like the ledger
    reconciler = FakeReconciler(fake)
    reconciler.candidates = [candidate("checkout-nobody", "created")]
    async with worker(client, fake, reconciler, queue):
        report = await reconcile(client, queue)

    assert (report.checked, report.changed, report.flagged) == (1, 0, 0)
    assert reconciler.flags == [] and reconciler.runs == [report]


async def test_a_closed_saga_whose_ledger_disagrees_is_flagged_not_changed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client, queue = time_skipping_env.client, f"reconcile-{uuid.uuid4().hex}"
    fake = FakeGateway()
    fake.status, fake.captured = PaymentStatus.CAPTURED, AMOUNT  # money taken at the gateway...
    reconciler = FakeReconciler(fake)
    reconciler.candidates = [
        candidate("checkout-long-gone", "voided", closed=True),  # ...the ledger says voided
        candidate("checkout-never-existed", "authorized"),  # open in the ledger, no workflow
    ]
    async with worker(client, fake, reconciler, queue):
        report = await reconcile(client, queue)

    assert (report.checked, report.changed, report.flagged) == (2, 0, 2)
    assert {f.candidate.workflow_id for f in reconciler.flags} == {
        "checkout-long-gone",
        "checkout-never-existed",
    }
    assert "captured" in reconciler.flags[0].detail
    assert fake.captures == [] and fake.releases == [] and fake.refunds == []
