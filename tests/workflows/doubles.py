"""Test doubles for the checkout's activities, registered under the real activity names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import names
from domain.checkout import (
    AbandonGatewayPayment,
    CaptureCheckoutPayment,
    CaptureGatewayPayment,
    CaptureMode,
    CheckoutRecord,
    CheckoutRequest,
    CheckoutState,
    Gateway,
    GatewayPayment,
    GatewayPaymentRef,
    MerchantDecision,
    OpenCheckoutPayment,
    PaymentEvent,
    PaymentEventKind,
    PaymentInstructions,
    PaymentStatus,
    ReleaseGatewayPayment,
    capture_record,
)
from domain.refund import CreateGatewayRefund
from domain.risk import (
    AssessCheckout,
    Assessment,
    RecordReview,
    ReviewOutcome,
    RiskDecision,
    RiskStage,
    RiskVerdict,
    RuleHit,
    RuleName,
)
from tests.versioning import TEST_DEPLOYMENT
from tests.workflows.refund_doubles import FakeRefunds
from workflows import search_attributes as search
from workflows.checkout import CheckoutWorkflow
from workflows.refund import RefundWorkflow

AMOUNT = 4_999


class FakeGateway:
    """A gateway and ledger in memory; tests steer it and read what the saga did."""

    def __init__(self, gateway: Gateway = Gateway.STRIPE) -> None:
        self.gateway = gateway
        self.payment_id = "pi_1"
        """The current gateway payment's id: `pi_<n>` for the n-th created."""
        self.created: list[OpenCheckoutPayment] = []
        self.others: dict[str, GatewayPayment] = {}
        """Gateway payments the checkout left, as look-ups of their id find them."""
        self.release_cancels = True
        """False: a release leaves the payment as it is (Razorpay cannot cancel an order)."""
        self.after_release: Callable[[], None] | None = None
        self.during_expiry: Callable[[], Awaitable[None]] | None = None
        """Runs inside the deadline's look-and-release, after the release."""
        self.captured_after_the_look = False
        """At the deadline: the gateway captures on its own between the look and the release."""
        self.status = PaymentStatus.CREATED
        self.amount = AMOUNT
        self.captured = 0
        self.charge_id: str | None = None
        self.captures: list[CaptureGatewayPayment] = []
        self.releases: list[ReleaseGatewayPayment] = []
        self.refund_desk = FakeRefunds(gateway, captured=0)
        """The refund workflow's gateway and ledger, for the compensation's child."""
        self.records: list[CheckoutRecord] = []
        self.merchant = MerchantDecision(accepted=True, reason="in stock")
        self.merchant_error: Exception | None = None
        self.capture_error: ApplicationError | None = None
        self.lose_capture_answers = 0
        """The next n capture calls capture (the first) but their answers never arrive."""
        self.capture_gate: asyncio.Event | None = None
        self.refuse_record_step: str | None = None
        self.auto_capture = False
        """The gateway captures on its own when the customer pays (Razorpay's default)."""
        self.capturable: int | None = None
        """What the authorization lets capture, when less than the amount (a partial one)."""
        self.create_errors: list[ApplicationError] = []
        self.fetch_errors: list[ApplicationError] = []
        """Raised, one per call, by the next look-ups."""
        self.creates = 0
        self.fetches = 0
        self.calls: list[str] = []
        """Creates and abandons in order, with their gateway: `create:stripe`."""
        self.abandon_errors: list[ApplicationError] = []
        self.left_at: dict[Gateway, PaymentStatus] = {}
        """What an earlier create left at a gateway (a 500 after the write): found on abandon."""
        self.risk: dict[RiskStage, RiskVerdict] = {}
        """The risk verdict per stage (allow when not set)."""
        self.assessments: list[AssessCheckout] = []
        self.reviews: list[RecordReview] = []

    def risk_says(
        self,
        stage: RiskStage,
        decision: RiskDecision,
        *,
        review_for: timedelta = timedelta(hours=1),
        default: ReviewOutcome = ReviewOutcome.REJECTED,
    ) -> None:
        """The next assessment at `stage` decides `decision` (a review lasting `review_for`)."""
        hit = RuleHit(
            rule=RuleName.AMOUNT, score=100, reason="amount_not_accepted", detail="over 1000"
        )
        self.risk[stage] = RiskVerdict(
            assessment_id=len(self.risk) + 1,
            assessment=Assessment(decision=decision, score=100, hits=[hit]),
            review_deadline=datetime.now(UTC) + review_for,
            review_default=default,
        )

    def customer_pays(self) -> PaymentEvent:
        self.status = PaymentStatus.CAPTURED if self.auto_capture else PaymentStatus.AUTHORIZED
        self.captured = self.amount if self.auto_capture else 0
        self.charge_id = "ch_1"
        return PaymentEvent(
            event_id=f"evt_{uuid.uuid4().hex}",
            kind=PaymentEventKind.AUTHORIZED,
            gateway_payment_id=self.payment_id,
            gateway_charge_id="ch_1",
        )

    def declines(self, payment_id: str | None = None) -> PaymentEvent:
        """The customer's bank declines an attempt (the payment stays open for another)."""
        return PaymentEvent(
            event_id=f"evt_{uuid.uuid4().hex}",
            kind=PaymentEventKind.FAILED,
            gateway_payment_id=payment_id or self.payment_id,
            gateway_charge_id=f"ch_declined_{uuid.uuid4().hex[:6]}",
            error_code="card_declined",
            error_message="Your card was declined.",
        )

    def payment(self) -> GatewayPayment:
        authorized = self.status is PaymentStatus.AUTHORIZED
        return GatewayPayment(
            ref=GatewayPaymentRef(
                gateway=self.gateway,
                gateway_payment_id=self.payment_id,
                gateway_charge_id=self.charge_id,
            ),
            status=self.status,
            amount=self.amount,
            currency="USD",
            amount_capturable=(self.capturable or self.amount) if authorized else 0,
            amount_captured=self.captured,
            instructions=PaymentInstructions(stripe_client_secret="pi_1_secret_x"),
        )

    def steps(self) -> list[str]:
        return [r.step for r in self.records]

    @property
    def refunds(self) -> list[CreateGatewayRefund]:
        return self.refund_desk.created

    def ledger_balance(self) -> dict[str, int]:
        balance: dict[str, int] = {}
        lines = [line for record in self.records for line in record.postings]
        for line in lines + self.refund_desk.postings:
            balance[line.account] = balance.get(line.account, 0) + line.amount
        return balance

    def activities(self) -> list[Callable[..., Any]]:
        def write(records: list[CheckoutRecord]) -> None:
            """The ledger: each record applied once (by its key)."""
            for record in records:
                if any(r.record_key == record.record_key for r in self.records):
                    continue
                if record.step == self.refuse_record_step:
                    raise ApplicationError(
                        "ledger refused", type="ledger_refused", non_retryable=True
                    )
                self.records.append(record)
                if record.amount_captured is not None:
                    self.refund_desk.captured = record.amount_captured

        @activity.defn(name="record_checkout_steps")
        async def record_checkout_steps(records: list[CheckoutRecord]) -> None:
            write(records)

        @activity.defn(name="create_gateway_payment")
        async def create_gateway_payment(request: OpenCheckoutPayment) -> GatewayPayment:
            self.creates += 1
            self.calls.append(f"create:{request.payment.gateway}")
            if self.create_errors:
                raise self.create_errors.pop(0)
            self.created.append(request)
            self.gateway, self.payment_id = request.payment.gateway, f"pi_{len(self.created)}"
            self.status, self.captured, self.charge_id = PaymentStatus.CREATED, 0, None
            checkout_id = request.payment.checkout_id
            write([
                CheckoutRecord(
                    record_key=f"{checkout_id}:checkout_created", checkout_id=checkout_id,
                    status=PaymentStatus.CREATED, step="checkout_created",
                ),
                CheckoutRecord(
                    record_key=f"{checkout_id}:gateway_payment_created:{request.switch}",
                    checkout_id=checkout_id, status=PaymentStatus.CREATED,
                    step="gateway_payment_created", gateway_payment_id=self.payment_id,
                ),
            ])  # fmt: skip
            return self.payment()

        @activity.defn(name="fetch_gateway_payment")
        async def fetch_gateway_payment(ref: GatewayPaymentRef) -> GatewayPayment:
            self.fetches += 1
            if self.fetch_errors:
                raise self.fetch_errors.pop(0)
            if ref.gateway_payment_id in self.others:
                return self.others[ref.gateway_payment_id]
            return self.payment()

        @activity.defn(name="capture_gateway_payment")
        async def capture_gateway_payment(request: CaptureCheckoutPayment) -> GatewayPayment:
            capture = request.capture
            self.captures.append(capture)
            if self.capture_gate is not None:
                await self.capture_gate.wait()
            if self.capture_error is not None:
                raise self.capture_error
            self.status = PaymentStatus.CAPTURED
            self.captured = capture.amount
            if self.lose_capture_answers:
                self.lose_capture_answers -= 1
                raise ApplicationError("read timed out", type="gateway_unreachable")
            record = capture_record(
                request.checkout_id, capture.ref.gateway, capture.ref.gateway_charge_id,
                capture.amount, capture.currency,
            )  # fmt: skip
            write([*request.records, record])
            return self.payment()

        @activity.defn(name="release_gateway_payment")
        async def release_gateway_payment(request: ReleaseGatewayPayment) -> GatewayPayment:
            return release(request)

        @activity.defn(name="expire_gateway_payment")
        async def expire_gateway_payment(request: ReleaseGatewayPayment) -> GatewayPayment:
            """As the real one: a look, then a release of what is still open."""
            looked = await fetch_gateway_payment(request.ref)
            if self.captured_after_the_look:
                self.status, self.captured, self.charge_id = (
                    PaymentStatus.CAPTURED, self.amount, "ch_1",
                )  # fmt: skip
            if looked.status in (
                PaymentStatus.CREATED, PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING,
                PaymentStatus.UNKNOWN,
            ):  # fmt: skip
                released = release(request)
                if self.during_expiry is not None:
                    await self.during_expiry()
                return released
            return looked

        def release(request: ReleaseGatewayPayment) -> GatewayPayment:
            if self.status is PaymentStatus.CAPTURED:  # as the adapters answer
                raise ApplicationError(
                    "captured payments can only be refunded",
                    type="already_captured",
                    non_retryable=True,
                )
            self.releases.append(request)
            if self.release_cancels:
                self.status = PaymentStatus.CANCELED
            released = self.payment()
            if self.after_release is not None:
                self.after_release()
            return released

        @activity.defn(name="abandon_gateway_payment")
        async def abandon_gateway_payment(request: AbandonGatewayPayment) -> str:
            self.calls.append(f"abandon:{request.gateway}")
            if self.abandon_errors:
                raise self.abandon_errors.pop(0)
            if request.gateway in self.left_at:
                self.left_at[request.gateway] = PaymentStatus.CANCELED
                return f"{request.gateway} pi_0 released: canceled"
            return f"nothing was created at {request.gateway}"

        @activity.defn(name="confirm_order_with_merchant")
        async def confirm_order_with_merchant(checkout: CheckoutState) -> MerchantDecision:
            if self.merchant_error is not None:
                raise self.merchant_error
            return self.merchant

        @activity.defn(name="assess_checkout_risk")
        async def assess_checkout_risk(request: AssessCheckout) -> RiskVerdict:
            self.assessments.append(request)
            allow = RiskVerdict(
                assessment_id=0, assessment=Assessment(decision=RiskDecision.ALLOW, score=0)
            )
            return self.risk.get(request.stage, allow)

        @activity.defn(name="record_risk_review")
        async def record_risk_review(review: RecordReview) -> None:
            self.reviews.append(review)

        return [
            record_checkout_steps,
            create_gateway_payment,
            fetch_gateway_payment,
            capture_gateway_payment,
            release_gateway_payment,
            expire_gateway_payment,
            abandon_gateway_payment,
            confirm_order_with_merchant,
            assess_checkout_risk,
            record_risk_review,
            *self.refund_desk.activities(),
        ]


def checkout_request(capture_mode: CaptureMode = CaptureMode.AUTOMATIC) -> CheckoutRequest:
    return CheckoutRequest(
        order_id=f"o_{uuid.uuid4().hex[:8]}",
        amount=AMOUNT,
        currency="USD",
        gateway=Gateway.STRIPE,
        customer_id="c_42",
        capture_mode=capture_mode,
        idempotency_key="key-00000001",
        authorization_window_seconds=15 * 60,
        manual_capture_window_seconds=6 * 24 * 3600,
    )


def worker(client: Client, fake: FakeGateway, task_queue: str) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CheckoutWorkflow, RefundWorkflow],
        activities=fake.activities(),
        deployment_config=TEST_DEPLOYMENT,
    )


async def start(
    client: Client,
    request: CheckoutRequest,
    task_queue: str,
    task_timeout: timedelta | None = None,
) -> WorkflowHandle[CheckoutWorkflow, CheckoutState]:
    workflow_id = names.checkout_workflow_id(request.order_id)
    return await client.start_workflow(
        CheckoutWorkflow.run,
        request,
        id=workflow_id,
        task_queue=task_queue,
        search_attributes=search.checkout_at_start(request, workflow_id),
        task_timeout=task_timeout,
    )


T = TypeVar("T")

SHORT_RETRIES = timedelta(seconds=10)
"""Longer than the backoffs of a gateway call's short retries (1 s, then 2 s), shorter than the
saga's first pause between rounds of them (30 s)."""


async def answered_while_retries_pass(env: WorkflowEnvironment, call: Awaitable[T]) -> T:
    """Await `call` (an update the saga answers only after activity retries) while the
    time-skipping server skips `SHORT_RETRIES` ahead: it skips on its own only while a workflow's
    result is awaited, and would otherwise wait out the retries' backoffs in real time."""
    answer, _ = await asyncio.gather(call, env.sleep(SHORT_RETRIES))
    return answer


def payable(state: CheckoutState) -> bool:
    """The gateway payment exists: the customer can pay."""
    return state.gateway_payment_id is not None


async def paid_checkout(client: Client, fake: FakeGateway, task_queue: str) -> CheckoutState:
    """A checkout whose customer pays as soon as they can, run to its end: what it ended as."""
    async with worker(client, fake, task_queue):
        handle = await start(client, checkout_request(), task_queue)
        await wait_for(handle, payable)
        await handle.signal(CheckoutWorkflow.payment_event, fake.customer_pays())
        return await handle.result()


async def wait_for(
    handle: WorkflowHandle[CheckoutWorkflow, CheckoutState],
    predicate: Callable[[CheckoutState], bool],
) -> CheckoutState:
    for _ in range(200):
        state = await handle.query(CheckoutWorkflow.state)
        if predicate(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"checkout never reached the expected state: {state}")
