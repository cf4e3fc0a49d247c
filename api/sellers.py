"""Marketplace: sellers (`/v1/sellers`: register, read, balance and payout history from the
ledger), the splits a checkout may carry (checked here before anything is written), and the
operators' release and hold of a checkout's payout (`/v1/payouts/{id}`), sent to its saga as
updates with the caller recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints, ValidationError

from api.auth import AUTH_PROBLEMS, STAFF, Caller, Policy, Role, access
from api.context import AppContext, app_context
from api.models import Body, CreateCheckout, Identifier
from api.problems import Problem
from api.updates import run_update
from db import marketplace
from domain import names
from domain.checkout import Gateway
from domain.marketplace import HoldPayout, Payout, ReleasePayoutEarly, TransferStatus
from domain.splits import Splits, SplitsError, check_splits
from workflows.payout import PayoutWorkflow

router = APIRouter(tags=["marketplace"], responses=AUTH_PROBLEMS)
Context = Annotated[AppContext, Depends(app_context)]
Merchant = Annotated[Caller, Depends(access(Role.MERCHANT, Role.ADMIN, policy=Policy.WRITE))]
Staff = Annotated[Caller, Depends(access(*STAFF))]
Operator = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN, policy=Policy.WRITE))]
SellerId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
PaymentId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$")]

# Bodies


class RegisterSeller(Body):
    seller_id: Identifier
    gateway: Gateway
    gateway_account_id: Annotated[str, StringConstraints(pattern=r"^acc(t)?_[A-Za-z0-9]{6,40}$")]
    """Stripe `acct_…` (a connected account), Razorpay `acc_…` (a linked account)."""
    name: Annotated[str, StringConstraints(max_length=200)] = ""


class HoldBody(Body):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)]


class SellerView(BaseModel):
    seller_id: str
    gateway: Gateway
    gateway_account_id: str
    name: str
    onboarding_state: str
    created_at: datetime


class BalanceLine(BaseModel):
    currency: str
    held: int = Field(description="in escrow, not yet paid to the seller")
    paid: int = Field(description="transferred to the seller's account, less reversals")


class SellerBalance(BaseModel):
    seller_id: str
    balances: list[BalanceLine]


class PayoutLine(BaseModel):
    transfer_id: str
    payment_id: str
    amount: int = Field(description="the seller's share of the capture")
    amount_released: int
    amount_reversed: int
    currency: str
    status: TransferStatus
    gateway_transfer_id: str | None
    release_at: datetime | None
    released_at: datetime | None
    created_at: datetime


class SellerPayouts(BaseModel):
    seller_id: str
    payouts: list[PayoutLine]


# Splits on a checkout


async def check_checkout_splits(ctx: AppContext, body: CreateCheckout) -> None:
    """422 with a code when the splits cannot be paid: they must add up to the amount, name
    registered sellers of the checkout's gateway, and a release date must lie ahead."""
    if body.splits is None:
        if body.release_at is not None:
            raise Problem(422, "release_at_without_splits", "release_at needs splits")
        return
    try:
        splits = Splits.model_validate(body.splits.model_dump())
        check_splits(splits, body.amount, body.release_at, datetime.now(UTC))
    except ValidationError as error:
        raise Problem(422, "invalid_splits", str(error.errors()[0]["msg"])) from None
    except SplitsError as error:
        raise Problem(422, error.code, error.detail) from None
    if not isinstance(body.gateway, Gateway):
        # sellers are paid through one gateway's accounts: no auto routing, no failover
        raise Problem(
            422, "splits_need_gateway", "a checkout with splits names its gateway explicitly"
        )
    ids = [s.seller_id for s in splits.shares]
    known = await marketplace.sellers(ctx.pool, ids)
    for seller_id in ids:
        seller = known.get(seller_id)
        if seller is None:
            raise Problem(422, "unknown_seller", f"no seller {seller_id}", seller_id=seller_id)
        if seller.gateway is not body.gateway:
            raise Problem(
                422, "seller_gateway_mismatch",
                f"seller {seller_id} is paid through {seller.gateway}, not {body.gateway}",
                seller_id=seller_id,
            )  # fmt: skip


# Sellers


@router.post("/v1/sellers", status_code=201, response_model=SellerView)
async def register_seller(body: RegisterSeller, ctx: Context, caller: Merchant) -> JSONResponse:
    """Register a seller's connected (Stripe) or linked (Razorpay) account. The same seller id
    again answers 200 with the first registration; another seller's account is a 409."""
    seller, created = await marketplace.register_seller(
        ctx.pool, body.seller_id, body.gateway, body.gateway_account_id, body.name, "pending"
    )
    if seller is None:
        raise Problem(409, "account_taken", "another seller has this gateway account")
    view = SellerView(**seller.__dict__)
    return JSONResponse(view.model_dump(mode="json"), status_code=201 if created else 200)


@router.get("/v1/sellers/{seller_id}", response_model=SellerView)
async def get_seller(seller_id: SellerId, ctx: Context, caller: Staff) -> SellerView:
    return SellerView(**(await _seller(ctx, seller_id)).__dict__)


@router.get("/v1/sellers/{seller_id}/balance", response_model=SellerBalance)
async def seller_balance(seller_id: SellerId, ctx: Context, caller: Staff) -> SellerBalance:
    """From the ledger: what escrow holds for the seller and what was paid to them, per
    currency."""
    await _seller(ctx, seller_id)
    lines = await marketplace.seller_balances(ctx.pool, seller_id)
    return SellerBalance(seller_id=seller_id, balances=[BalanceLine(**b.__dict__) for b in lines])


@router.get("/v1/sellers/{seller_id}/payouts", response_model=SellerPayouts)
async def seller_payouts(
    seller_id: SellerId,
    ctx: Context,
    caller: Staff,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SellerPayouts:
    """The seller's payout history, newest first: each share held, released, reversed."""
    await _seller(ctx, seller_id)
    found = await marketplace.seller_payouts(ctx.pool, seller_id, limit)
    return SellerPayouts(seller_id=seller_id, payouts=[PayoutLine(**p.__dict__) for p in found])


async def _seller(ctx: AppContext, seller_id: str) -> marketplace.Seller:
    seller = await marketplace.seller(ctx.pool, seller_id)
    if seller is None:
        raise Problem(404, "not_found", f"no seller {seller_id}")
    return seller


# Payouts

PAYOUT_PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no payout for this checkout"},
    409: {"description": "released already (`already_released`), or not running"},
    503: {"description": "Temporal is unreachable; retry later"},
}


@router.get("/v1/payouts/{payment_id}", response_model=Payout, responses=PAYOUT_PROBLEMS)
async def get_payout(payment_id: PaymentId, ctx: Context, caller: Staff) -> Payout:
    """A checkout's payout as the ledger holds it."""
    payout = await marketplace.load_payout(ctx.pool, payment_id)
    if payout is None:
        raise Problem(404, "not_found", f"no payout for {payment_id} (no splits, or not captured)")
    return payout


@router.post("/v1/payouts/{payment_id}/release", response_model=Payout, responses=PAYOUT_PROBLEMS)
async def release_payout(payment_id: PaymentId, ctx: Context, caller: Operator) -> Payout:
    """Release now, before the release date, or lift a hold; the caller is recorded."""
    handle = await _payout_handle(ctx, payment_id)
    return await run_update(
        handle, PayoutWorkflow.release_early, ReleasePayoutEarly(caller=caller.subject),
        Payout, "payout",
    )  # fmt: skip


@router.post("/v1/payouts/{payment_id}/hold", response_model=Payout, responses=PAYOUT_PROBLEMS)
async def hold_payout(
    payment_id: PaymentId, body: HoldBody, ctx: Context, caller: Operator
) -> Payout:
    """Hold the payout with a reason: no release, not even on its date, until released."""
    handle = await _payout_handle(ctx, payment_id)
    return await run_update(
        handle, PayoutWorkflow.hold, HoldPayout(reason=body.reason, caller=caller.subject),
        Payout, "payout",
    )  # fmt: skip


async def _payout_handle(ctx: AppContext, payment_id: str) -> Any:
    if not await marketplace.has_payout(ctx.pool, payment_id):
        raise Problem(404, "not_found", f"no payout for {payment_id}")
    return ctx.temporal.get_workflow_handle(names.payout_workflow_id(payment_id))
