"""Refunds: ask for one on a captured payment (a RefundWorkflow per request), read them back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api import idempotency
from api.auth import AUTH_PROBLEMS, STAFF, Caller, Policy, Role, access
from api.context import AppContext, app_context
from api.history import (
    CurrencyFilter,
    IdentifierFilter,
    NothingVisible,
    PaymentIdFilter,
    Since,
    Until,
    time_range,
    visible_customer,
)
from api.idempotency import IdempotencyKey
from api.models import Amount, Body, check_amount_limit
from api.pagination import Cursor, Page, PageSize, decode_cursor, page_of
from api.problems import Problem, temporal_unavailable
from db import history, payments, refunds
from domain import names
from domain.checkout import Gateway, PaymentStatus
from domain.history import RefundFilter
from domain.money import format_amount
from domain.refund import (
    RefundMode,
    RefundReason,
    RefundRequest,
    RefundState,
    RefundStatus,
    RefundStep,
    refund_id_for,
)
from workflows import search_attributes as search
from workflows.refund import RefundWorkflow

router = APIRouter(tags=["refunds"], responses=AUTH_PROBLEMS)

# Creating a refund needs operator/admin credentials and the stricter refund rate limit; staff
# read every refund, a customer only those of its own payments.
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN, policy=Policy.REFUND))]
Reader = Annotated[Caller, Depends(access(*STAFF, Role.CUSTOMER))]

Context = Annotated[AppContext, Depends(app_context)]
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$")]
RefundId = Annotated[str, Path(pattern=r"^rfd_[0-9a-f]{24}$")]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such payment or refund"},
    409: {
        "description": "`payment_not_refundable` (nothing captured) or `refund_exceeds_available`"
        " (more than captured - refunded - pending)"
    },
    422: {"description": "the request is not valid, or the Idempotency-Key was used for another"},
    503: {"description": "Temporal is unreachable; retry later"},
}

# How each refusal of the ledger's reservation reads at the API.
REFUSAL_STATUS = {
    "invalid_refund_amount": 422,
    "payment_not_refundable": 409,
    "refund_exceeds_available": 409,
    "unknown_payment": 404,
}


class CreateRefund(Body):
    amount: Amount | None = Field(
        default=None, description="minor units; omitted = all that is left to refund"
    )
    reason: RefundReason
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class Refund(BaseModel):
    refund_id: str
    workflow_id: str = Field(description="the refund's saga in the Temporal UI")
    payment_id: str
    status: RefundStatus
    mode: RefundMode
    reason: RefundReason
    note: str | None
    amount: int = Field(description="minor units; 0 until the ledger has reserved it")
    currency: str | None
    gateway: Gateway | None
    gateway_refund_id: str | None
    failure_reason: str | None
    payment_status: PaymentStatus | None = Field(
        description="the payment's status (`partially_refunded`, `refunded`, …)"
    )
    timeline: list[RefundStep]

    @classmethod
    def from_state(cls, state: RefundState) -> Refund:
        return cls(
            **state.model_dump(
                include={
                    "refund_id", "workflow_id", "payment_id", "status", "mode", "reason", "note",
                    "amount", "currency", "gateway", "gateway_refund_id", "failure_reason",
                    "payment_status",
                }
            ),
            timeline=state.history,
        )  # fmt: skip


@router.post(
    "/v1/payments/{payment_id}/refunds",
    status_code=202,
    response_model=Refund,
    responses=PROBLEMS,
)
async def create_refund(
    payment_id: PaymentId,
    body: CreateRefund,
    idempotency_key: IdempotencyKey,
    ctx: Context,
    caller: Operator,
) -> JSONResponse:
    """Refund a captured payment, in part or (amount omitted) all that is left. Answers 202 once
    the ledger has reserved the amount; the gateway's answer arrives later (GET the refund).

    The same key and body give the same refund; the same key with another body is a 422."""
    check_amount_limit(ctx.settings, body.amount)
    stored = await idempotency.once(
        ctx.pool,
        f"refunds:{caller.subject}:{payment_id}",
        idempotency_key,
        body,
        lambda: _start_refund(ctx, caller, payment_id, body, idempotency_key),
    )
    if stored.status >= 400:
        refusal = stored.body
        raise Problem(stored.status, refusal["code"], refusal["detail"], **refusal["extra"])
    return JSONResponse(stored.body, status_code=stored.status)


async def _start_refund(
    ctx: AppContext, caller: Caller, payment_id: str, body: CreateRefund, key: str
) -> idempotency.StoredResponse:
    currency = await payments.payment_currency(ctx.pool, payment_id)
    if currency is None:
        raise Problem(404, "not_found", f"no payment {payment_id}")
    amount = format_amount(body.amount, currency) if body.amount else "the rest"
    workflow_id = names.own_refund_workflow_id(payment_id, caller.subject, key)
    start = WithStartWorkflowOperation(
        RefundWorkflow.run,
        RefundRequest(
            payment_id=payment_id,
            amount=body.amount,
            reason=body.reason,
            note=body.note,
            mode=RefundMode.OWN,
            idempotency_key=key,
            poll_interval_seconds=ctx.settings.refund_poll_interval_seconds,
            requested_by=caller.subject,
        ),
        id=workflow_id,
        task_queue=ctx.settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # One refund per key, ever: a closed refund is never followed by a second one.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"Refund {amount} of {payment_id} ({body.reason})",
        static_details=f"Idempotency-Key {key}, requested by {caller.subject}",
        memo={"requested_by": caller.subject},
        search_attributes=search.refund_at_start(payment_id),
    )
    try:
        state = await ctx.temporal.execute_update_with_start_workflow(
            RefundWorkflow.reservation, start_workflow_operation=start
        )
    except WorkflowAlreadyStartedError:
        state = await _closed_refund(ctx, workflow_id)
    except RPCError as error:
        raise temporal_unavailable() from error
    if state.status is RefundStatus.REFUSED:
        code = state.refusal_code or "refund_refused"
        return idempotency.StoredResponse(
            REFUSAL_STATUS.get(code, 409),
            {
                "code": code,
                "detail": state.failure_reason or code,
                "extra": {"payment_id": payment_id},
            },
        )
    return idempotency.StoredResponse(202, Refund.from_state(state).model_dump(mode="json"))


async def _closed_refund(ctx: AppContext, workflow_id: str) -> RefundState:
    """The key's workflow has closed: its refund from the ledger, else (refused, so never in the
    ledger) the workflow's result."""
    recorded = await refunds.refund_state(ctx.pool, refund_id_for(workflow_id))
    if recorded is not None:
        return recorded
    try:
        handle = ctx.temporal.get_workflow_handle(workflow_id, result_type=RefundState)
        result: RefundState = await handle.result()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            raise Problem(
                409, "idempotency_key_used",
                "this Idempotency-Key was used for a refund that is no longer kept; use a new key",
            ) from None  # fmt: skip
        raise temporal_unavailable() from error
    return result


@router.get(
    "/v1/payments/{payment_id}/refunds",
    response_model=list[Refund],
    responses=PROBLEMS,
)
async def list_refunds(payment_id: PaymentId, ctx: Context, caller: Reader) -> list[Refund]:
    """Every refund of the payment, oldest first: ours, compensations and observed ones."""
    await _visible_payment(ctx, caller, payment_id)
    return [Refund.from_state(r) for r in await refunds.refunds_of_payment(ctx.pool, payment_id)]


@router.get(
    "/v1/refunds",
    response_model=Page[Refund],
    responses={422: {"description": "a filter or the cursor (`invalid_cursor`) is not valid"}},
)
async def list_all_refunds(
    ctx: Context,
    caller: Reader,
    customer_id: IdentifierFilter = None,
    payment_id: PaymentIdFilter = None,
    status: Annotated[list[RefundStatus] | None, Query(description="any of these")] = None,
    gateway: Gateway | None = None,
    currency: CurrencyFilter = None,
    created_from: Since = None,
    created_to: Until = None,
    cursor: Cursor = None,
    limit: PageSize = 50,
) -> Page[Refund]:
    """Refunds of every payment, newest first, a page at a time; a customer token sees only
    those of its own payments."""
    after = decode_cursor("refunds", cursor)
    try:
        customer = visible_customer(caller, customer_id)
    except NothingVisible:
        return Page[Refund](items=[], next_cursor=None)
    found = RefundFilter(
        customer_id=customer, payment_id=payment_id, statuses=tuple(status or ()),
        gateway=gateway, currency=currency,
        created=time_range("created", created_from, created_to),
    )  # fmt: skip
    rows = await history.list_refunds(ctx.pool, found, after, limit)
    return page_of("refunds", [(at, Refund.from_state(r)) for at, r in rows], limit)


@router.get("/v1/refunds/{refund_id}", response_model=Refund, responses=PROBLEMS)
async def get_refund(refund_id: RefundId, ctx: Context, caller: Reader) -> Refund:
    """Status, amounts, the gateway's refund id and the timeline of every step."""
    refund = await refunds.refund_state(ctx.pool, refund_id)
    if refund is None:
        raise Problem(404, "not_found", f"no refund {refund_id}")
    await _visible_payment(ctx, caller, refund.payment_id, not_found=f"no refund {refund_id}")
    return Refund.from_state(refund)


async def _visible_payment(
    ctx: AppContext, caller: Caller, payment_id: str, not_found: str | None = None
) -> None:
    """404 alike for a payment that does not exist and one that is not the caller's."""
    owner = await payments.find_checkout(ctx.pool, payment_id)
    if owner is None or not caller.may_see(owner.customer_id):
        raise Problem(404, "not_found", not_found or f"no payment {payment_id}")
