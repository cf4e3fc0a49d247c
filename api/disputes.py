"""Disputes, for operators: list and read them, put evidence forward (draft or submit) or accept,
as validated updates on each dispute's workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api import idempotency
from api.auth import AUTH_PROBLEMS, Caller, Policy, Role, access
from api.card_data import CardDataFree
from api.context import AppContext, app_context
from api.history import CurrencyFilter, PaymentIdFilter, Since, Until, time_range
from api.idempotency import IdempotencyKey
from api.pagination import Cursor, Page, PageSize, decode_cursor, page_of
from api.problems import Problem
from api.updates import run_update
from db import disputes, history
from domain.checkout import Gateway, PaymentStatus
from domain.dispute import (
    AcceptDispute,
    DisputeEvidence,
    DisputeStage,
    DisputeState,
    DisputeStatus,
    DisputeStep,
    SubmitEvidence,
)
from domain.history import DisputeFilter
from workflows.dispute import DisputeWorkflow

router = APIRouter(prefix="/v1/disputes", tags=["disputes"], responses=AUTH_PROBLEMS)

Context = Annotated[AppContext, Depends(app_context)]
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN, policy=Policy.EVIDENCE))]
Reader = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]
DisputeId = Annotated[str, Path(pattern=r"^dsp_[0-9a-f]{24}$")]
Note = Annotated[str, StringConstraints(max_length=500)]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such dispute"},
    409: {
        "description": "`evidence_deadline_passed`, `evidence_already_submitted`,"
        " `dispute_accepted`, `dispute_closed`, `dispute_busy`, `evidence_incomplete` or"
        " `gateway_refused`"
    },
    422: {"description": "the request is not valid, or the Idempotency-Key was used for another"},
    503: {"description": "Temporal is unreachable; retry later"},
}


class EvidenceBody(DisputeEvidence, CardDataFree):
    """Evidence fields, strictly typed and bounded; documents are references (a gateway file or
    document id, or an https URL), never uploads. `submit` false saves a draft."""

    model_config = ConfigDict(extra="forbid", strict=True)

    submit: bool = False
    note: Note | None = None


class AcceptBody(CardDataFree):
    model_config = ConfigDict(extra="forbid", strict=True)

    note: Note | None = None


class Dispute(BaseModel):
    dispute_id: str
    gateway: Gateway
    gateway_dispute_id: str
    payment_id: str | None = Field(description="ours; null when no payment of ours matches")
    status: DisputeStatus
    stage: DisputeStage
    amount: int
    currency: str | None
    reason: str | None
    due_by: datetime | None = Field(description="the evidence deadline")
    evidence: DisputeEvidence | None
    submitted: bool
    deadline_action: str | None
    amount_withdrawn: int = Field(description="net funds withdrawn in the ledger")
    flagged: str | None = Field(description="why an operator should look")
    payment_status: PaymentStatus | None
    timeline: list[DisputeStep]

    @classmethod
    def from_state(cls, state: DisputeState) -> Dispute:
        return cls(
            **state.model_dump(
                include={
                    "dispute_id", "gateway", "gateway_dispute_id", "payment_id", "status",
                    "stage", "amount", "currency", "reason", "due_by", "evidence", "submitted",
                    "deadline_action", "amount_withdrawn", "flagged", "payment_status",
                }
            ),
            timeline=state.history,
        )  # fmt: skip


@router.get("", response_model=Page[Dispute], responses=PROBLEMS)
async def list_disputes(
    ctx: Context,
    caller: Reader,
    status: Annotated[list[DisputeStatus] | None, Query(description="any of these")] = None,
    stage: DisputeStage | None = None,
    gateway: Gateway | None = None,
    currency: CurrencyFilter = None,
    payment_id: PaymentIdFilter = None,
    created_from: Since = None,
    created_to: Until = None,
    cursor: Cursor = None,
    limit: PageSize = 50,
) -> Page[Dispute]:
    """Disputes, newest first, a page at a time, optionally narrowed (`status=open` and
    `status=challenged` together give the ones still to be decided)."""
    after = decode_cursor("disputes", cursor)
    found = DisputeFilter(
        payment_id=payment_id, statuses=tuple(status or ()), stage=stage, gateway=gateway,
        currency=currency, created=time_range("created", created_from, created_to),
    )  # fmt: skip
    rows = await history.list_disputes(ctx.pool, found, after, limit)
    return page_of("disputes", [(at, Dispute.from_state(d)) for at, d in rows], limit)


@router.get("/{dispute_id}", response_model=Dispute, responses=PROBLEMS)
async def get_dispute(dispute_id: DisputeId, ctx: Context, caller: Reader) -> Dispute:
    """Status, stage, deadline, evidence, funds and the timeline of every step."""
    dispute = await disputes.dispute_state(ctx.pool, dispute_id)
    if dispute is None:
        raise Problem(404, "not_found", f"no dispute {dispute_id}")
    return Dispute.from_state(dispute)


@router.post("/{dispute_id}/evidence", response_model=Dispute, responses=PROBLEMS)
async def put_evidence(
    dispute_id: DisputeId,
    body: EvidenceBody,
    idempotency_key: IdempotencyKey,
    ctx: Context,
    caller: Operator,
) -> JSONResponse:
    """Save evidence as a draft (`submit` false; it replaces the previous draft) or submit it to
    the gateway for good. Refused (409) after the deadline, once submitted or accepted."""
    evidence = DisputeEvidence.model_validate(body.model_dump(exclude={"submit", "note"}))
    request = SubmitEvidence(evidence=evidence, submit=body.submit, note=body.note)
    return await _decide(
        ctx, caller, dispute_id, idempotency_key, "evidence", request,
        DisputeWorkflow.submit_evidence,
    )  # fmt: skip


@router.post("/{dispute_id}/accept", response_model=Dispute, responses=PROBLEMS)
async def accept_dispute(
    dispute_id: DisputeId,
    idempotency_key: IdempotencyKey,
    ctx: Context,
    caller: Operator,
    body: AcceptBody | None = None,
) -> JSONResponse:
    """Concede the dispute at the gateway: it is lost and the withdrawal stays."""
    request = AcceptDispute(note=(body or AcceptBody()).note)
    return await _decide(
        ctx, caller, dispute_id, idempotency_key, "accept", request, DisputeWorkflow.accept
    )


async def _decide(
    ctx: AppContext,
    caller: Caller,
    dispute_id: str,
    key: str,
    action: str,
    request: SubmitEvidence | AcceptDispute,
    update: Any,
) -> JSONResponse:
    workflow_id = await disputes.dispute_workflow(ctx.pool, dispute_id)
    if workflow_id is None:
        raise Problem(404, "not_found", f"no dispute {dispute_id}")

    async def produce() -> idempotency.StoredResponse:
        handle = ctx.temporal.get_workflow_handle(workflow_id)
        authored = request.model_copy(update={"requested_by": caller.subject})
        state = await run_update(handle, update, authored, DisputeState, "dispute")
        return idempotency.StoredResponse(200, Dispute.from_state(state).model_dump(mode="json"))

    stored = await idempotency.once(
        ctx.pool,
        f"dispute-{action}:{caller.subject}:{dispute_id}",
        key,
        request,
        produce,
    )
    return JSONResponse(stored.body, status_code=stored.status)
