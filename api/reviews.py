"""Risk reviews: the queue operators work through (`GET /v1/reviews`, oldest first) and their
decision on a checkout held for review (`POST /v1/checkouts/{id}/review`), sent to its saga as an
update with the caller recorded."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.auth import AUTH_PROBLEMS, Caller, Policy, Role, access
from api.context import AppContext, app_context
from api.history import CurrencyFilter, IdentifierFilter, Since
from api.models import Checkout, ReviewBody
from api.problems import Problem
from api.updates import run_update
from db import payments, risk
from domain.checkout import CheckoutState
from domain.risk import ReviewDecision, ReviewItem, ReviewOutcome, ReviewStatus, RiskStage
from workflows.checkout import CheckoutWorkflow

router = APIRouter(tags=["reviews"], responses=AUTH_PROBLEMS)
Context = Annotated[AppContext, Depends(app_context)]
Reader = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]
Reviewer = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN, policy=Policy.WRITE))]
CheckoutId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$")]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such checkout"},
    409: {"description": "no risk review is waiting for a decision (`no_review_pending`)"},
    422: {"description": "the request is not valid"},
    503: {"description": "Temporal is unreachable; retry later"},
}


class ReviewQueue(BaseModel):
    reviews: list[ReviewItem]


@router.get("/v1/reviews", response_model=ReviewQueue, responses={422: PROBLEMS[422]})
async def list_reviews(
    ctx: Context,
    caller: Reader,
    status: ReviewStatus = ReviewStatus.PENDING,
    stage: RiskStage | None = None,
    customer_id: IdentifierFilter = None,
    currency: CurrencyFilter = None,
    created_after: Since = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReviewQueue:
    """Checkouts held for a risk review, oldest first (pending ones unless `status` says)."""
    queue = await risk.reviews(
        ctx.pool, status=status, stage=stage, customer_id=customer_id, currency=currency,
        created_after=created_after, limit=limit,
    )  # fmt: skip
    return ReviewQueue(reviews=queue)


@router.post("/v1/checkouts/{checkout_id}/review", response_model=Checkout, responses=PROBLEMS)
async def review_checkout(
    checkout_id: CheckoutId, body: ReviewBody, ctx: Context, caller: Reviewer
) -> Checkout:
    """Approve (the checkout goes on) or reject (it fails, or its authorization is voided) a
    checkout held for a risk review; answers once the saga has applied the decision."""
    found = await payments.find_checkout(ctx.pool, checkout_id)
    if found is None:
        raise Problem(404, "not_found", f"no checkout {checkout_id}")
    decision = ReviewDecision(
        outcome=ReviewOutcome.APPROVED if body.decision == "approve" else ReviewOutcome.REJECTED,
        reviewer=caller.subject,
        note=body.note,
    )
    handle = ctx.temporal.get_workflow_handle(found.workflow_id)
    state = await run_update(handle, CheckoutWorkflow.review, decision, CheckoutState, "checkout")
    return Checkout.from_state(state, "workflow", ctx.settings.sandbox_checkout_base)
