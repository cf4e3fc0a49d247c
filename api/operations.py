"""Operator actions on a running saga: look at the gateway now, or retry a step in backoff now.

The same actions from the Temporal CLI are in the README's Operations section."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetActivityRequest
from temporalio.service import RPCError, RPCStatusCode

from api.auth import AUTH_PROBLEMS, Caller, Role, access
from api.checkouts import temporal_unavailable
from api.context import AppContext, app_context
from api.ledger_view import find_checkout
from api.models import Checkout
from api.problems import Problem
from domain.checkout import PaymentEvent, PaymentEventKind
from workflows.checkout import CheckoutWorkflow

router = APIRouter(tags=["operations"], responses=AUTH_PROBLEMS)
Context = Annotated[AppContext, Depends(app_context)]
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$")]

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
    found = await find_checkout(ctx.pool, payment_id)
    if found is None:
        raise Problem(404, "not_found", f"no payment {payment_id}")
    return found.workflow_id


def _closed_or_unavailable(error: RPCError) -> Problem:
    if error.status is RPCStatusCode.NOT_FOUND:
        return Problem(409, "checkout_closed", "the payment's saga has finished")
    return temporal_unavailable()


@router.post(
    "/v1/payments/{payment_id}/reconcile",
    status_code=202,
    response_model=Checkout,
    responses=PROBLEMS,
)
async def reconcile_payment(payment_id: PaymentId, ctx: Context, caller: Operator) -> Checkout:
    """Ask the payment's saga to fetch the payment from the gateway now and act on what it finds
    (an authorization whose webhook was lost, an authorization canceled on the dashboard)."""
    handle = ctx.temporal.get_workflow_handle(await _workflow_id(ctx, payment_id))
    request = PaymentEvent(
        event_id=f"reconcile:{uuid.uuid4().hex}",
        kind=PaymentEventKind.RECONCILE,
        gateway_payment_id=payment_id,
    )
    try:
        await handle.signal(CheckoutWorkflow.payment_event, request)
        state = await handle.query(CheckoutWorkflow.state)
    except RPCError as error:
        raise _closed_or_unavailable(error) from error
    return Checkout.from_state(state, "workflow", None)


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
