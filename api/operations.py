"""Operator actions: reconcile a payment with its gateway now, retry a step in backoff now, and
what the reconciler found.

The same actions from the Temporal CLI are in docs/operations.md."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetActivityRequest
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AUTH_PROBLEMS, Caller, Role, access
from api.context import AppContext, app_context
from api.problems import Problem, temporal_unavailable
from db import payments, reconciliation
from domain import names
from domain.reconcile import ReconcileReport, ReconcileRequest
from workflows.reconcile import ReconcileWorkflow

router = APIRouter(tags=["operations"], responses=AUTH_PROBLEMS)
Context = Annotated[AppContext, Depends(app_context)]
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$")]
RECONCILE_TIMEOUT = timedelta(seconds=60)

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such payment"},
    409: {"description": "the payment's saga has finished"},
    503: {"description": "Temporal is unreachable; retry later"},
}


class RetriedStep(BaseModel):
    activity_id: str
    activity: str
    attempt: int
    last_failure: str | None


class RetryReport(BaseModel):
    workflow_id: str
    retried: list[RetriedStep]


async def _workflow_id(ctx: AppContext, payment_id: str) -> str:
    found = await payments.find_checkout(ctx.pool, payment_id)
    if found is None:
        raise Problem(404, "not_found", f"no payment {payment_id}")
    return found.workflow_id


def _closed_or_unavailable(error: RPCError) -> Problem:
    if error.status is RPCStatusCode.NOT_FOUND:
        return Problem(409, "checkout_closed", "the payment's saga has finished")
    return temporal_unavailable()


@router.post(
    "/v1/payments/{payment_id}/reconcile", response_model=ReconcileReport, responses=PROBLEMS
)
async def reconcile_payment(
    payment_id: PaymentId, ctx: Context, caller: Operator
) -> ReconcileReport:
    """Run the reconciler's check for this payment and its refunds now: ask the gateway, send
    what differs back to the running saga (a lost webhook, a dashboard change), or flag it for
    operators when the saga has closed. Answers with the run's findings."""
    await _workflow_id(ctx, payment_id)
    try:
        return await ctx.temporal.execute_workflow(
            ReconcileWorkflow.run,
            ReconcileRequest(payment_id=payment_id, trigger=f"operator:{caller.subject}"),
            id=names.reconcile_workflow_id(payment_id, uuid.uuid4().hex[:8]),
            task_queue=ctx.settings.task_queue,
            static_summary=f"Reconcile {payment_id} (asked by {caller.subject})",
            execution_timeout=RECONCILE_TIMEOUT,
        )
    except RPCError as error:
        raise temporal_unavailable() from error
    except WorkflowFailureError as error:
        raise Problem(503, "reconciliation_failed", str(error.cause or error)) from None


class ReconciliationRun(BaseModel):
    run_id: str
    trigger: str
    started_at: datetime
    finished_at: datetime
    checked: int
    changed: int
    flagged: int
    unreachable: int


class ReconciliationFlag(BaseModel):
    object_kind: str
    object_id: str
    payment_id: str | None
    ledger_status: str
    gateway_status: str | None
    detail: str
    run_id: str
    flagged_at: datetime


class ReconciliationOverview(BaseModel):
    runs: list[ReconciliationRun]
    open_flags: list[ReconciliationFlag]


@router.get("/v1/reconciliation/runs", response_model=ReconciliationOverview)
async def reconciliation_runs(
    ctx: Context, caller: Operator, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> ReconciliationOverview:
    """The reconciler's recent runs with their counts, and what it left for operators."""
    runs = await reconciliation.recent_runs(ctx.pool, limit)
    flags = await reconciliation.open_flags(ctx.pool)
    fields = ReconciliationFlag.model_fields
    return ReconciliationOverview(
        runs=[ReconciliationRun(**dict(r)) for r in runs],
        open_flags=[ReconciliationFlag(**{k: f[k] for k in fields}) for f in flags],
    )


@router.post("/v1/payments/{payment_id}/retry", response_model=RetryReport, responses=PROBLEMS)
async def retry_stuck_steps(payment_id: PaymentId, ctx: Context, caller: Operator) -> RetryReport:
    """Retry now every step of the payment's saga that waits in retry backoff (e.g. after the
    gateway or the merchant was down), instead of at its next scheduled attempt."""
    workflow_id = await _workflow_id(ctx, payment_id)
    handle = ctx.temporal.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
        pending = description.raw_description.pending_activities
        retried = [
            RetriedStep(
                activity_id=a.activity_id,
                activity=a.activity_type.name,
                attempt=a.attempt,
                last_failure=a.last_failure.message or None,
            )
            for a in pending
        ]
        if retried:
            await ctx.temporal.workflow_service.reset_activity(
                ResetActivityRequest(
                    namespace=ctx.temporal.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id),
                    match_all=True,
                    identity=f"operator:{caller.subject}",
                )
            )
    except RPCError as error:
        raise _closed_or_unavailable(error) from error
    return RetryReport(workflow_id=workflow_id, retried=retried)
