"""`/v1/checkouts`: start a checkout saga, read, cancel or capture it, confirm Razorpay payments."""

from __future__ import annotations

from typing import Annotated, Any

import razorpay.errors
import structlog
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.gateways.razorpay import events as razorpay_events
from api import idempotency, webhooks
from api.audit import audit_target
from api.auth import AUTH_PROBLEMS, STAFF, Caller, Policy, Role, access
from api.context import AppContext, app_context
from api.gateways import choose_gateway
from api.history import (
    AmountFilter,
    CurrencyFilter,
    IdentifierFilter,
    NothingVisible,
    Since,
    TextFilter,
    Until,
    time_range,
    visible_customer,
)
from api.idempotency import IdempotencyKey
from api.metrics import CHECKOUTS
from api.models import (
    CancelBody,
    CaptureBody,
    Checkout,
    CreateCheckout,
    RazorpayConfirmation,
    SwitchGatewayBody,
    check_amount_limit,
)
from api.pagination import Cursor, Page, PageSize, decode_cursor, page_of
from api.problems import Problem, temporal_unavailable
from api.sellers import check_checkout_splits
from api.updates import run_update
from db import history, payments
from db.pool import DATABASE_UNAVAILABLE
from domain import names
from domain.checkout import (
    ENDED_WITHOUT_MONEY,
    CancelCheckout,
    CaptureCheckout,
    CheckoutRequest,
    CheckoutState,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    PaymentStatus,
    Routing,
    SwitchGateway,
    manual_capture_window,
)
from domain.history import PaymentFilter, PaymentSummary
from domain.money import format_amount
from settings import Settings
from workflows import search_attributes as search
from workflows.checkout import CheckoutWorkflow

log = structlog.get_logger("api.checkouts")
router = APIRouter(prefix="/v1/checkouts", tags=["checkouts"], responses=AUTH_PROBLEMS)

Context = Annotated[AppContext, Depends(app_context)]
CheckoutId = Annotated[str, Path(pattern=r"^pay_[0-9a-f]{24}$")]
Merchant = Annotated[Caller, Depends(access(Role.MERCHANT, Role.ADMIN, policy=Policy.WRITE))]
Reader = Annotated[Caller, Depends(access(*STAFF, Role.CUSTOMER))]
Payer = Annotated[Caller, Depends(access(*STAFF, Role.CUSTOMER, policy=Policy.WRITE))]

PROBLEMS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such checkout (or not the caller's)"},
    409: {"description": "the checkout's state does not allow this"},
    422: {"description": "the request is not valid"},
    503: {"description": "Temporal is unreachable; retry later"},
}


LIST_PROBLEMS: dict[int | str, dict[str, Any]] = {
    422: {"description": "a filter (`validation_error`, `invalid_filter`) or the cursor"
          " (`invalid_cursor`) is not valid"},
}  # fmt: skip


@router.get("", response_model=Page[PaymentSummary], responses=LIST_PROBLEMS)
async def list_checkouts(
    ctx: Context,
    caller: Reader,
    customer_id: IdentifierFilter = None,
    order_id: IdentifierFilter = None,
    status: Annotated[list[PaymentStatus] | None, Query(description="any of these")] = None,
    gateway: Gateway | None = None,
    currency: CurrencyFilter = None,
    amount_min: AmountFilter = None,
    amount_max: AmountFilter = None,
    created_from: Since = None,
    created_to: Until = None,
    updated_from: Since = None,
    updated_to: Until = None,
    q: TextFilter = None,
    cursor: Cursor = None,
    limit: PageSize = 50,
) -> Page[PaymentSummary]:
    """Payments, newest first, a page at a time; staff see every customer's, a customer token
    only its own (its customer is forced, whatever `customer_id` says)."""
    after = decode_cursor("checkouts", cursor)
    if amount_min is not None and amount_max is not None and amount_min > amount_max:
        raise Problem(422, "invalid_filter", "amount_min is above amount_max", parameter="amount")
    try:
        customer = visible_customer(caller, customer_id)
    except NothingVisible:
        return Page[PaymentSummary](items=[], next_cursor=None)
    found = PaymentFilter(
        customer_id=customer, order_id=order_id, statuses=tuple(status or ()), gateway=gateway,
        currency=currency, amount_min=amount_min, amount_max=amount_max,
        created=time_range("created", created_from, created_to),
        updated=time_range("updated", updated_from, updated_to), text=q,
    )  # fmt: skip
    rows = await history.list_payments(ctx.pool, found, after, limit)
    return page_of("checkouts", rows, limit)


def _same_checkout(state: CheckoutState, body: CreateCheckout, gateway: Gateway) -> bool:
    """Same terms; a routed checkout may have failed over to another gateway meanwhile."""
    routed = not isinstance(body.gateway, Gateway)
    return (state.amount, state.currency, state.customer_id, state.capture_mode) == (
        body.amount, body.currency, body.customer_id, body.capture_mode,
    ) and (routed or state.gateway is gateway)  # fmt: skip


@router.post(
    "",
    status_code=201,
    response_model=Checkout,
    responses={200: {"model": Checkout, "description": "the order's existing checkout"}, **PROBLEMS,
               422: {"description": "invalid request, or the gateway refused the payment"}},
)  # fmt: skip
async def create_checkout(
    body: CreateCheckout,
    idempotency_key: IdempotencyKey,
    ctx: Context,
    caller: Merchant,
    request: Request,
) -> JSONResponse:
    """Start the checkout saga (update-with-start) and answer with what the client needs to pay.

    The same key and body again give the same answer; an order that already has a checkout
    gets that checkout back (200), never a second charge."""
    check_amount_limit(ctx.settings, body.amount)
    await check_checkout_splits(ctx, body)
    stored = await idempotency.once(
        ctx.pool,
        f"checkouts:{caller.subject}",
        idempotency_key,
        body,
        lambda: _start_checkout(ctx, body, idempotency_key, caller.subject),
    )
    if stored.body.get("checkout_id"):
        audit_target(request, "checkout", str(stored.body["checkout_id"]))
    gateway = str(stored.body.get("gateway") or body.gateway or ctx.settings.default_gateway)
    CHECKOUTS.labels(gateway, str(stored.status)).inc()
    log.info(
        "checkout requested",
        payment_id=stored.body.get("checkout_id"),
        gateway=gateway,
        routing=stored.body.get("routing_reason"),
        status=stored.status,
    )
    return JSONResponse(stored.body, status_code=stored.status)


def checkout_request(
    body: CreateCheckout,
    settings: Settings,
    idempotency_key: str,
    attempt: int,
    requested_by: str | None = None,
    gateway: Gateway | None = None,
    routing: Routing | None = None,
) -> CheckoutRequest:
    """The checkout saga's input: the merchant's request, its gateway (the one it names unless
    routing chose), and the windows it runs by (the shortest of the gateways it may end on)."""
    if gateway is None:
        assert isinstance(body.gateway, Gateway), "choose_gateway() names a routed one"
        gateway = body.gateway
    may_end_on = [gateway, *(routing.fallbacks if routing else [])]
    return CheckoutRequest(
        **body.model_dump(exclude={"gateway"}),
        gateway=gateway,
        routing=routing,
        idempotency_key=idempotency_key,
        authorization_window_seconds=settings.authorization_window_seconds,
        manual_capture_window_seconds=min(
            manual_capture_window(
                g, settings.manual_capture_window_seconds, settings.authorization_window_seconds
            )
            for g in may_end_on
        ),
        attempt=attempt,
        requested_by=requested_by,
    )


async def _start_checkout(
    ctx: AppContext, body: CreateCheckout, idempotency_key: str, requested_by: str
) -> idempotency.StoredResponse:
    settings = ctx.settings
    latest = await payments.latest_attempt(ctx.pool, body.order_id)
    attempt = 1 if latest is None else latest.attempt
    if latest is not None and latest.status in ENDED_WITHOUT_MONEY:
        attempt += 1
    gateway, routing = await choose_gateway(ctx, body)
    request = checkout_request(
        body, settings, idempotency_key, attempt, requested_by, gateway=gateway, routing=routing
    )
    workflow_id = names.checkout_workflow_id(body.order_id, attempt)
    start = WithStartWorkflowOperation(
        CheckoutWorkflow.run,
        request,
        id=workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # One checkout per attempt, ever: a closed checkout is never followed by a second charge.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"Checkout {body.order_id}: {format_amount(body.amount, body.currency)}"
        f" via {gateway}" + (f" (attempt {attempt})" if attempt > 1 else ""),
        static_details=f"customer {body.customer_id}, capture {body.capture_mode}",
        search_attributes=search.checkout_at_start(request, workflow_id),
        memo={"amount": format_amount(body.amount, body.currency), "requested_by": requested_by}
        | ({"routing": routing.reason} if routing else {}),
    )
    source = "workflow"
    try:
        state = await ctx.temporal.execute_update_with_start_workflow(
            CheckoutWorkflow.checkout_ready, start_workflow_operation=start
        )
    except WorkflowAlreadyStartedError:
        closed = await payments.checkout_state(ctx.pool, names.checkout_id_for(workflow_id))
        if closed is None:
            raise temporal_unavailable() from None
        state, source = closed, "ledger"
    except RPCError as error:
        raise temporal_unavailable() from error
    if not _same_checkout(state, body, gateway):
        raise Problem(
            409, "order_has_checkout",
            f"order {body.order_id} already has checkout {state.checkout_id} with other terms",
            checkout_id=state.checkout_id,
        )  # fmt: skip
    # the same request (same key) later answers with what the client needs to pay
    _check_gateway_reached(state, "retry this request shortly")
    view = Checkout.from_state(state, source, settings.sandbox_checkout_base)
    if state.status is PaymentStatus.FAILED and state.risk_reason is not None:
        # blocked by risk screening before any gateway call; the reason is safe to show
        raise Problem(
            422, "risk_blocked", "the payment was not accepted",
            checkout_id=state.checkout_id, reason=state.risk_reason,
        )  # fmt: skip
    if state.status is PaymentStatus.FAILED and state.gateway_payment_id is None:
        # e.g. an amount under the gateway's minimum: the request, not the service, is at fault
        raise Problem(
            422, "gateway_refused", state.last_error or "the gateway refused the payment",
            checkout_id=state.checkout_id,
        )  # fmt: skip
    status = 201 if state.idempotency_key == idempotency_key else 200
    return idempotency.StoredResponse(status, view.model_dump(mode="json"))


@router.get("/{checkout_id}", response_model=Checkout, responses=PROBLEMS)
async def get_checkout(checkout_id: CheckoutId, ctx: Context, caller: Reader) -> Checkout:
    """The live state from the workflow while it runs; the ledger's record once it has closed."""
    handle = await _handle(ctx, caller, checkout_id)
    try:
        description = await handle.describe()
        if description.status is WorkflowExecutionStatus.RUNNING:
            state = await handle.query(CheckoutWorkflow.state)
            return Checkout.from_state(state, "workflow", ctx.settings.sandbox_checkout_base)
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise temporal_unavailable() from error
    closed = await payments.checkout_state(ctx.pool, checkout_id)
    assert closed is not None
    return Checkout.from_state(closed, "ledger", None)


@router.post("/{checkout_id}/cancel", response_model=Checkout, responses=PROBLEMS)
async def cancel_checkout(
    checkout_id: CheckoutId, ctx: Context, caller: Payer, body: CancelBody | None = None
) -> Checkout:
    """Cancel before capture: the authorization (if any) is voided at the gateway."""
    request = CancelCheckout(reason=(body or CancelBody()).reason, requested_by=caller.subject)
    handle = await _handle(ctx, caller, checkout_id)
    state = await _update(handle, CheckoutWorkflow.cancel, request)
    return Checkout.from_state(state, "workflow", None)


@router.post("/{checkout_id}/switch-gateway", response_model=Checkout, responses=PROBLEMS)
async def switch_gateway(
    checkout_id: CheckoutId, ctx: Context, caller: Payer, body: SwitchGatewayBody | None = None
) -> Checkout:
    """After a declined attempt, move an auto-routed checkout to another gateway routing allowed
    (when DECLINED_RETRY_ON_OTHER_GATEWAY is on), and answer with what the client needs to pay
    there. The payment at the gateway left is released first; money taken there later is given
    back. 409 `checkout_not_switched` when the payment there went through after all."""
    request = SwitchGateway(
        gateway=(body or SwitchGatewayBody()).gateway, requested_by=caller.subject
    )
    handle = await _handle(ctx, caller, checkout_id)
    state = await _update(handle, CheckoutWorkflow.switch_gateway, request)
    _check_gateway_reached(state, "the checkout will be ready there shortly")
    return Checkout.from_state(state, "workflow", ctx.settings.sandbox_checkout_base)


def _check_gateway_reached(state: CheckoutState, then: str) -> None:
    """503 while the checkout's gateway cannot be reached to create its payment: an outage
    delays the checkout, it does not fail it (the saga keeps trying)."""
    if state.awaiting_gateway and state.gateway_payment_id is None:
        raise Problem(
            503, "gateway_unavailable", f"{state.gateway} cannot be reached now; {then}",
            headers={"Retry-After": "30"}, checkout_id=state.checkout_id,
        )  # fmt: skip


@router.post("/{checkout_id}/capture", response_model=Checkout, responses=PROBLEMS)
async def capture_checkout(
    checkout_id: CheckoutId,
    idempotency_key: IdempotencyKey,
    ctx: Context,
    caller: Merchant,
    body: CaptureBody | None = None,
) -> JSONResponse:
    """Capture a manual-capture checkout (the whole authorization unless an amount is given)."""
    request = CaptureCheckout(amount=(body or CaptureBody()).amount)
    check_amount_limit(ctx.settings, request.amount)
    handle = await _handle(ctx, caller, checkout_id)

    async def capture() -> idempotency.StoredResponse:
        authored = request.model_copy(update={"requested_by": caller.subject})
        state = await _update(handle, CheckoutWorkflow.capture, authored)
        view = Checkout.from_state(state, "workflow", None)
        return idempotency.StoredResponse(200, view.model_dump(mode="json"))

    stored = await idempotency.once(
        ctx.pool,
        f"capture:{caller.subject}:{checkout_id}",
        idempotency_key,
        request,
        capture,
    )
    return JSONResponse(stored.body, status_code=stored.status)


@router.post(
    "/{checkout_id}/razorpay/confirm",
    status_code=202,
    response_model=Checkout,
    responses={**PROBLEMS, 400: {"description": "the Razorpay signature does not verify"}},
)
async def confirm_razorpay_payment(
    checkout_id: CheckoutId, body: RazorpayConfirmation, ctx: Context, caller: Payer
) -> Checkout:
    """The client's proof from Razorpay Checkout that the customer paid, verified before use."""
    state = await payments.checkout_state(ctx.pool, checkout_id)
    if state is None or not caller.may_see(state.customer_id):
        raise Problem(404, "not_found", f"no checkout {checkout_id}")
    if state.gateway is not Gateway.RAZORPAY or state.gateway_payment_id != body.razorpay_order_id:
        raise Problem(400, "order_mismatch", "this Razorpay order does not belong to the checkout")
    try:
        ctx.razorpay_verifier.utility.verify_payment_signature(body.model_dump())
    except razorpay.errors.SignatureVerificationError:
        raise Problem(400, "invalid_signature", "the Razorpay signature does not verify") from None
    payment = await _as_razorpay_says(ctx, body.razorpay_order_id, body.razorpay_payment_id)
    proof = razorpay_events.client_confirmation(
        body.razorpay_order_id, body.razorpay_payment_id, payment
    )
    try:
        await webhooks.keep(ctx, proof)  # delivered by the relay, once with the webhook's
    except DATABASE_UNAVAILABLE as error:
        raise Problem(503, "database_unavailable", "retry shortly") from error
    return Checkout.from_state(state, "ledger", None)


async def _as_razorpay_says(
    ctx: AppContext, order_id: str, payment_id: str
) -> GatewayPayment | None:
    """The payment as Razorpay reads it now; None when it cannot be had (the saga then looks
    itself, later), so an outage at Razorpay never refuses a customer's proof."""
    ref = GatewayPaymentRef(
        gateway=Gateway.RAZORPAY, gateway_payment_id=order_id, gateway_charge_id=payment_id
    )
    try:
        return await ctx.razorpay.fetch_payment(ref)
    except ApplicationError as error:
        log.info("razorpay_confirmation_unread", reason=error.type)
        return None


async def _handle(ctx: AppContext, caller: Caller, checkout_id: str) -> WorkflowHandle[Any, Any]:
    """The checkout's workflow, if it exists and the caller may see it (else 404, alike)."""
    found = await payments.find_checkout(ctx.pool, checkout_id)
    if found is None or not caller.may_see(found.customer_id):
        raise Problem(404, "not_found", f"no checkout {checkout_id}")
    return ctx.temporal.get_workflow_handle(found.workflow_id)


async def _update(handle: WorkflowHandle[Any, Any], update: Any, arg: Any) -> CheckoutState:
    return await run_update(handle, update, arg, CheckoutState, "checkout")
