"""Checkout saga: record → create the gateway payment → wait for the customer to pay → confirm with
the merchant → capture → record. Whatever ends it early — a refusal, a deadline, a cancel, a
workflow cancellation — it looks at what the gateway holds and leaves nothing there: an open
payment is released, an authorization voided, a capture refunded."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.merchant import MerchantActivities
    from activities.payments import GatewayActivities
    from activities.risk import RiskActivities
    from domain import names
    from domain.checkout import (
        CLOSED_STATUSES,
        AbandonGatewayPayment,
        CancelCheckout,
        CaptureCheckout,
        CaptureCheckoutPayment,
        CaptureGatewayPayment,
        CaptureMode,
        CheckoutRecord,
        CheckoutRequest,
        CheckoutState,
        CheckoutStep,
        CreateGatewayPayment,
        Gateway,
        GatewayPayment,
        GatewayPaymentRef,
        LeftGatewayPayment,
        NewCheckout,
        OpenCheckoutPayment,
        PaymentAttempt,
        PaymentEvent,
        PaymentEventKind,
        PaymentInstructions,
        PaymentStatus,
        ReleaseGatewayPayment,
        SwitchGateway,
        capture_record,
    )
    from domain.money import format_amount
    from domain.refund import (
        RefundMode,
        RefundReason,
        RefundRequest,
        RefundState,
        RefundStatus,
    )
    from domain.risk import (
        AssessCheckout,
        RecordReview,
        ReviewDecision,
        ReviewOutcome,
        ReviewStatus,
        RiskDecision,
        RiskStage,
        RiskVerdict,
    )
    from workflows import kit
    from workflows import search_attributes as search
    from workflows.policies import (
        BACKGROUND,
        CREATE_RETRY,
        GATEWAY_RETRY,
        GATEWAY_TIMEOUT,
        LEDGER_TIMEOUT,
        LIVE,
        MERCHANT_RETRY,
        MERCHANT_TIMEOUT,
        PERSISTENT_RETRY,
        authorization_review_time,
    )

# Events after which the saga looks at the gateway rather than trusting what it was told.
_GATEWAY_CHECKS = frozenset({PaymentEventKind.CANCELED, PaymentEventKind.RECONCILE})
# What the gateway may hold that is ours to release (cancel, void); captured money is refunded.
_RELEASABLE = frozenset(
    {
        PaymentStatus.CREATED,
        PaymentStatus.REQUIRES_ACTION,
        PaymentStatus.PROCESSING,
        PaymentStatus.AUTHORIZED,
        PaymentStatus.UNKNOWN,
    }
)
# What a declined payment may be at its gateway when the customer moves on: nothing was taken,
# nothing is under way (a Razorpay order whose payments all failed says `failed`).
_SWITCHABLE = frozenset(
    {PaymentStatus.CREATED, PaymentStatus.REQUIRES_ACTION, PaymentStatus.FAILED,
     PaymentStatus.CANCELED}
)  # fmt: skip
# The checkout's states while the customer may pay (or retry after a decline).
_WAITING_FOR_PAYMENT = frozenset({PaymentStatus.CREATED, PaymentStatus.REQUIRES_ACTION})
# States an operator searches for while the saga waits in them (besides the end).
_PUBLISHED = frozenset({PaymentStatus.NEEDS_REVIEW, PaymentStatus.UNKNOWN})
# How often a saga looks again when the gateway cannot be reached: an outage only delays.
_FIRST_PAUSE = timedelta(seconds=30)
_LONGEST_PAUSE = timedelta(minutes=5)


class CheckoutAborted(Exception):
    """A step after authorization failed for good; the saga undoes what the gateway holds."""

    def __init__(self, reason: str, status: PaymentStatus) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# Pinned: a checkout finishes on the build it started on (minutes; days for manual capture), so a
# deploy never changes a running checkout's code. docs/deployment.md: rollout and drain.
@workflow.defn(name=names.CHECKOUT_WORKFLOW, versioning_behavior=VersioningBehavior.PINNED)
class CheckoutWorkflow:
    @workflow.init
    def __init__(self, request: CheckoutRequest) -> None:
        info = workflow.info()
        self._request = request
        self._state = CheckoutState(
            checkout_id=names.checkout_id_for(info.workflow_id),
            workflow_id=info.workflow_id,
            order_id=request.order_id,
            customer_id=request.customer_id,
            gateway=request.gateway,
            capture_mode=request.capture_mode,
            amount=request.amount,
            currency=request.currency,
            status=PaymentStatus.CREATED,
            idempotency_key=request.idempotency_key,
            attempt=request.attempt,
            routing_reason=request.routing.reason if request.routing else None,
        )
        self._fallbacks = list(request.routing.fallbacks) if request.routing else []
        """Gateways auto routing allows the payment to move to, in order, while none is created."""
        self._switch: SwitchGateway | None = None
        """A declined customer's retry on another gateway, waiting for the run loop."""
        self._switching = False
        self._switches = 0
        """Switches the run loop has handled (whatever their outcome), for the update's answer."""
        self._switch_refusal: str | None = None
        self._declined_here = False
        """The customer's last attempt on the current gateway was declined."""
        self._left: list[str] = []
        """Gateway payments the checkout left: their events are their own rows' (the ledger's)."""
        self._abandoning: list[asyncio.Task[None]] = []
        """Releases at gateways the checkout left, still trying in the background."""
        self._records = 0
        self._ready = False
        self._inbox: kit.SignalInbox[PaymentEvent] = kit.SignalInbox()
        self._cancel: CancelCheckout | None = None
        self._capture: CaptureCheckout | None = None
        self._capturing = False
        self._capture_recorded = False
        self._deferred: list[CheckoutRecord] = []
        """Steps written with the next write (the capture's, or the next ledger step)."""
        self._deadline_passed = False
        self._published: PaymentStatus | None = None
        self._priority = LIVE
        """Of the gateway look-ups and releases (policies.BACKGROUND once the checkout expires)."""
        self._review: ReviewDecision | None = None
        self._reviewing = False
        self._authorization_reviewed_for = timedelta()
        """How long the authorization waited for a risk review: taken off the capture window."""

    # The story

    @workflow.run
    async def run(self, request: CheckoutRequest) -> CheckoutState:
        s = self._state
        s.authorization_deadline = workflow.now() + timedelta(
            seconds=request.authorization_window_seconds
        )
        # One timer for the deadline, never canceled: the waits below watch its flag.
        self._deadline_timer = asyncio.create_task(
            self._mark_deadline(request.authorization_window_seconds)
        )
        try:
            if await self._screened_before_create() and await self._create_gateway_payment():
                payment = await self._wait_for_authorization()
                if payment is not None:
                    await self._take_payment(payment)
        except BaseException as error:  # a cancellation may arrive as an activity's
            if not is_cancelled_exception(error):
                raise
            # Canceled through Temporal (an operator, a script): nothing may stay at the gateway,
            # unless the sale was done (captured and recorded).
            await kit.shielded(self._finish_canceled())
            await kit.shielded(self._abandoned())
            raise
        finally:
            workflow.metric_meter().create_counter(
                "payments_checkouts_finished", "Checkouts by gateway and final status"
            ).add(1, {"gateway": s.gateway.value, "status": s.status.value})
        await self._abandoned()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s

    async def _mark_deadline(self, seconds: int) -> None:
        await workflow.sleep(seconds, summary="authorization deadline")
        self._deadline_passed = True

    async def _finish_canceled(self) -> None:
        await self._write()  # steps not written yet, or cut short by the cancellation
        if not self._capture_recorded:
            await self._undo("the checkout's workflow was canceled", PaymentStatus.CANCELED)

    async def _create_gateway_payment(self) -> bool:
        """Record the checkout and create its payment at the gateway. A refusal (e.g. an amount
        under the gateway's minimum) fails the checkout; an outage does not: the saga keeps
        trying until the authorization deadline, and the API tells the client to come back."""
        s = self._state
        if not self._left:  # a declined customer's switch of gateway creates again
            self._note("checkout_created", PaymentStatus.CREATED, self._describe_amount())
        pause = _FIRST_PAUSE
        while True:
            try:
                payment = await self._create_at_gateway()
                break
            except ActivityError as error:
                kit.reraise_cancellation(error)
                reason = kit.cause(error)
                if not kit.gateway_unavailable(error):
                    await self._record(
                        "gateway_payment_refused", PaymentStatus.FAILED, reason, last_error=reason
                    )
                    return False
            if self._fallbacks and not self._cancel and not self._deadline_passed:
                await self._fail_over(reason)
                continue
            if not s.awaiting_gateway:
                s.awaiting_gateway = True
                await self._record(
                    "gateway_unavailable", PaymentStatus.CREATED,
                    f"{reason}; trying again until {s.authorization_deadline:%H:%M:%S} UTC",
                    last_error=reason,
                )  # fmt: skip
                self._ready = True  # the API answers 503: the client comes back later
            if not await self._pause(pause):
                status = PaymentStatus.CANCELED if self._cancel else PaymentStatus.EXPIRED
                why = f"canceled: {self._cancel.reason}" if self._cancel else "deadline passed"
                await self._record(status.value, status, f"{why}; the gateway was unavailable")
                return False
            pause = min(pause * 2, _LONGEST_PAUSE)
        s.awaiting_gateway = False
        s.gateway_payment_id = payment.ref.gateway_payment_id
        s.instructions = payment.instructions
        self._note(  # the create activity wrote it
            "gateway_payment_created", PaymentStatus.CREATED,
            f"{s.gateway} {s.gateway_payment_id}; waiting for the customer to pay",
        )  # fmt: skip
        self._ready = True
        return True

    async def _fail_over(self, reason: str) -> None:
        """The gateway could not be reached to create the payment and auto routing allows another
        that takes it: leave this one first — whatever an attempt may have created there is
        released, so a payment is never open on two gateways — then create on the next. Runs
        only after a failed create: a checkout that needs no failover pays nothing for it."""
        s = self._state
        left, s.gateway = s.gateway, self._fallbacks.pop(0)
        why = f"{left} unavailable ({reason}); moved to {s.gateway}"
        try:
            found = await self._abandon(left, why, CREATE_RETRY)
        except ActivityError as error:
            kit.reraise_cancellation(error)
            # Nothing created there was ever shown to a client (its create failed), so nobody can
            # pay it meanwhile; the release keeps trying until that gateway answers.
            self._abandoning.append(asyncio.create_task(self._abandon_later(left, why)))
            found = f"{left} could not be looked at ({kit.cause(error)}); releasing it later"
        s.abandoned_gateways.append(left)
        s.routing_reason = f"failover: {why}"
        workflow.upsert_search_attributes([search.GATEWAY.value_set(s.gateway.value)])
        workflow.upsert_memo({"gateway": s.gateway.value, "routing": s.routing_reason})
        await self._record(
            "gateway_failover", PaymentStatus.CREATED, f"{why}; {found}", last_error=reason
        )

    async def _abandon(self, gateway: Gateway, reason: str, retry: RetryPolicy) -> str:
        s = self._state
        return await workflow.execute_activity_method(
            GatewayActivities.abandon_gateway_payment,
            AbandonGatewayPayment(
                gateway=gateway, checkout_id=s.checkout_id, reason=reason,
                idempotency_key=f"{s.workflow_id}-abandon-{gateway}",
            ),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=retry,
            summary=f"release what {gateway} may hold of the checkout",
        )  # fmt: skip

    async def _abandon_later(self, gateway: Gateway, reason: str) -> None:
        try:
            found = await self._abandon(gateway, reason, PERSISTENT_RETRY)
        except ActivityError as error:
            kit.reraise_cancellation(error)
            found = f"refused: {kit.cause(error)}; an operator must look at {gateway}"
        await self._record("gateway_abandoned", self._state.status, found)

    async def _abandoned(self) -> None:
        """Releases at gateways the checkout left end before the checkout does."""
        if self._abandoning:
            await asyncio.gather(*self._abandoning)

    async def _switch_gateway(self, request: SwitchGateway) -> tuple[GatewayPayment | None, bool]:
        """A customer declined on this gateway retries on another that routing allowed: (the
        payment, when it went through here after all and is taken instead; whether the checkout
        goes on). A payment is never open on two gateways: the one here is looked at, released,
        and left in the ledger — money this gateway takes on it from then on is a late payment of
        its own row, given back — before the next gateway is asked."""
        s = self._state
        left, to = s.gateway, request.gateway or self._fallbacks[0]
        why = f"declined on {left} ({s.last_error}); the customer retries on {to}"
        # The customer waits for the answer: short tries, and the checkout stays if they fail.
        try:
            current = await kit.fetch_payment(self._ref(), retry=CREATE_RETRY)
            if current.status not in _SWITCHABLE:
                return self._stay(current, f"the payment at {left} is {current.status}")
            released = await self._release_at_gateway(why, CREATE_RETRY)
        except ActivityError as error:
            kit.reraise_cancellation(error)
            try:
                current = await kit.fetch_payment(self._ref(), retry=CREATE_RETRY)
            except ActivityError as again:
                kit.reraise_cancellation(again)
                return self._stay(None, f"{left} cannot be reached: {kit.cause(again)}")
            return self._stay(current, f"{left} did not release it: {kit.cause(error)}")
        if released.status not in _SWITCHABLE:
            return self._stay(released, f"the payment at {left} is {released.status}")
        assert s.gateway_payment_id is not None
        left_ref, key = self._ref(), names.left_payment_key(s.workflow_id, len(self._left) + 1)
        self._left.append(s.gateway_payment_id)
        self._declined_here = False
        self._fallbacks.remove(to)
        s.abandoned_gateways.append(left)
        s.gateway, s.gateway_payment_id, s.gateway_charge_id = to, None, None
        s.instructions, s.routing_reason = PaymentInstructions(), f"declined retry: {why}"
        workflow.upsert_search_attributes([search.GATEWAY.value_set(to.value)])
        workflow.upsert_memo({"gateway": to.value, "routing": s.routing_reason})
        await self._record(
            "gateway_switched", PaymentStatus.CREATED,
            f"{why}; {left} {left_ref.gateway_payment_id} {released.status}, left to its own"
            f" payment {names.checkout_id_for(key)}",
            left=LeftGatewayPayment(
                key=key, gateway=left, gateway_payment_id=left_ref.gateway_payment_id,
                moved_to=to,
            ),
        )  # fmt: skip
        if released.status is not PaymentStatus.CANCELED:
            await self._last_look_at_left(left_ref, names.checkout_id_for(key), to)
        return None, await self._create_gateway_payment()

    async def _last_look_at_left(self, ref: GatewayPaymentRef, left_id: str, to: Gateway) -> None:
        """A left payment that stays payable (a Razorpay order cannot be canceled) paid between
        the look and the ledger's move is given back like any later payment of the row it has
        now. Briefly, since the customer waits: when the gateway does not answer, the reconciler
        looks at the left row (a closed payment changed since its last run) and gives it back."""
        try:
            last = await kit.fetch_payment(ref, retry=CREATE_RETRY)
        except ActivityError as error:
            kit.reraise_cancellation(error)
            return
        if last.status is PaymentStatus.CAPTURED and last.amount_captured:
            await kit.give_back_late_payment(
                left_id, last.ref,
                f"paid on {ref.gateway} as checkout {self._state.checkout_id} moved to {to}",
            )  # fmt: skip

    def _stay(self, payment: GatewayPayment | None, why: str) -> tuple[GatewayPayment | None, bool]:
        """The switch does not happen: a payment that went through is taken, else the customer
        stays on this gateway (and may ask again)."""
        self._switch_refusal = f"the checkout stays on {self._state.gateway}: {why}"
        if payment is not None and payment.status in (
            PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED
        ):  # fmt: skip
            return payment, True
        return None, True

    async def _wait_for_authorization(self) -> GatewayPayment | None:
        """Until the deadline: record failed attempts, honour a cancel, return the authorization."""
        s = self._state
        assert s.authorization_deadline is not None
        while True:
            await workflow.wait_condition(
                lambda: (
                    bool(self._inbox)
                    or self._cancel is not None
                    or self._deadline_passed
                    or self._switch is not None
                )
            )
            if (
                not self._inbox
                and self._cancel is None
                and (self._switch is None or self._deadline_passed)
            ):
                return await self._expire()
            if self._cancel is not None:
                await self._undo(f"canceled: {self._cancel.reason}", PaymentStatus.CANCELED)
                return None
            if self._switch is not None and not self._inbox:  # what the gateway said comes first
                request, self._switch, self._switching = self._switch, None, True
                paid, goes_on = await self._switch_gateway(request)
                self._switches, self._switching = self._switches + 1, False
                if paid is not None:
                    return paid
                if not goes_on:
                    return None
                continue
            event = self._inbox.pop()
            if event.gateway_payment_id in self._left:
                continue  # the ledger routes the rest of a left payment's life to its own row
            if event.kind is PaymentEventKind.FAILED:
                await self._record_failed_attempt(event)
                continue
            payment = await self._look_at(event)
            if payment is None:
                continue
            if payment.status is PaymentStatus.CANCELED and event.kind in _GATEWAY_CHECKS:
                await self._record(
                    "canceled_at_gateway", PaymentStatus.CANCELED, "the gateway canceled it"
                )
                return None
            if payment.status in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED):
                return payment
            if payment.status is PaymentStatus.REQUIRES_ACTION:
                await self._authentication_required(event, payment)
                continue
            step = (
                "reconciled" if event.kind is PaymentEventKind.RECONCILE else "event_not_confirmed"
            )
            await self._record(
                step, s.status,
                f"{event.kind} event {event.event_id}: the gateway says {payment.status}",
            )  # fmt: skip

    async def _expire(self) -> GatewayPayment | None:
        """The authorization deadline passed: one call looks at the gateway and releases what is
        still open; an authorization whose webhook is late is taken (returned). A capture that
        lands between the look and the release is refunded, as compensation does."""
        s = self._state
        self._priority = BACKGROUND  # nobody waits on an expiring checkout: live calls go first
        reason = "authorization deadline passed"
        try:
            seen = await workflow.execute_activity_method(
                GatewayActivities.expire_gateway_payment,
                ReleaseGatewayPayment(
                    ref=self._ref(), reason=reason, idempotency_key=self._release_key()
                ),
                start_to_close_timeout=GATEWAY_TIMEOUT,
                retry_policy=PERSISTENT_RETRY,
                summary="look at the gateway; release what is still open",
                priority=self._priority,
            )
        except ActivityError as error:
            kit.reraise_cancellation(error)
            # captured between the look and the release (refunded below), or refused
            if not kit.refused_as(error, "already_captured"):
                await self._record("release_refused", s.status, kit.cause(error))
            await self._undo(reason, PaymentStatus.EXPIRED)
            return None
        if seen.status in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED):
            return seen
        await self._undo(reason, PaymentStatus.EXPIRED, released=seen)
        return None

    async def _authentication_required(self, event: PaymentEvent, payment: GatewayPayment) -> None:
        """The customer's bank asks for 3-D Secure: the client gets what it needs to
        authenticate (the checkout's view shows it), and the result comes by webhook — an
        authorization, or a failed attempt after which the customer may try again."""
        s = self._state
        snapshot = event.snapshot
        s.instructions.next_action = (
            snapshot.next_action if snapshot is not None else payment.instructions.next_action
        )
        await self._record(
            "authentication_required", PaymentStatus.REQUIRES_ACTION,
            f"the customer's bank asks for 3-D Secure; waiting for the result until"
            f" {s.authorization_deadline:%H:%M:%S} UTC",
        )  # fmt: skip

    async def _look_at(self, event: PaymentEvent) -> GatewayPayment | None:
        """What the gateway says of the payment an event names. None when it will not say: a
        payment of another order (a crafted event) is dropped; an outage is looked at again
        later, never a reason to end the checkout."""
        s = self._state
        snapshot = event.snapshot
        if snapshot is not None and event.gateway_payment_id == s.gateway_payment_id:
            return GatewayPayment(
                ref=self._ref(event.gateway_charge_id), **snapshot.model_dump(exclude={"status"}),
                status=snapshot.status,
            )  # fmt: skip
        pause = _FIRST_PAUSE
        while True:
            try:
                return await kit.fetch_payment(self._ref(event.gateway_charge_id))
            except ActivityError as error:
                kit.reraise_cancellation(error)
                reason = kit.cause(error)
                if not kit.gateway_unavailable(error):
                    await self._record(
                        "event_ignored", s.status, f"{event.kind} event {event.event_id}: {reason}"
                    )
                    return None
            if not await self._pause(pause):
                return None  # the deadline (or the cancel) looks at the gateway itself
            pause = min(pause * 2, _LONGEST_PAUSE)

    async def _take_payment(self, payment: GatewayPayment) -> None:
        """The saga proper: every step after the authorization. Any failure undoes what the
        gateway holds, looked up afresh."""
        s = self._state
        s.instructions.next_action = None
        s.gateway_charge_id = payment.ref.gateway_charge_id
        s.amount_authorized = payment.amount_capturable or payment.amount
        by_gateway = payment.status is PaymentStatus.CAPTURED
        try:
            if (payment.amount, payment.currency) != (s.amount, s.currency):
                await self._hold_for_review(
                    f"amount mismatch: the gateway has {payment.amount} {payment.currency},"
                    f" the order {s.amount} {s.currency}"
                )
            if not by_gateway and payment.amount_capturable < payment.amount:
                await self._hold_for_review(
                    f"partial authorization: {format_amount(payment.amount_capturable, s.currency)}"
                    f" of {format_amount(payment.amount, s.currency)} can be captured"
                )
            await self._screen_authorization()
            authorized_at = workflow.now()
            await self._record(
                "authorized", PaymentStatus.AUTHORIZED,
                self._describe_amount()
                + ("; the gateway captured it on its own" if by_gateway else ""),
                gateway_charge_id=s.gateway_charge_id,
                attempt=PaymentAttempt(
                    at=workflow.now(), gateway_attempt_id=s.gateway_charge_id, outcome="authorized"
                ),
            )  # fmt: skip
            amount = await self._await_capture_decision(by_gateway)
            self._capturing = True
            captured = payment if by_gateway else await self._capture_payment(amount)
            await self._captured(captured)
            if captured.amount_captured != amount:
                raise CheckoutAborted(
                    f"gateway captured {captured.amount_captured}, expected {amount}",
                    PaymentStatus.FAILED,
                )
            workflow.metric_meter().create_histogram_timedelta(
                "payments_checkout_authorized_to_captured",
                "From the authorization to the recorded capture, by gateway",
            ).record(workflow.now() - authorized_at, {"gateway": s.gateway.value})
        # a failed local activity (ledger write) arrives as its ApplicationError, unwrapped
        except (CheckoutAborted, ActivityError, ApplicationError) as error:
            if isinstance(error, ActivityError):
                kit.reraise_cancellation(error)
            if isinstance(error, CheckoutAborted):
                reason, status = error.reason, error.status
            else:
                reason, status = kit.cause(error), PaymentStatus.VOIDED
            s.last_error = reason
            await self._undo(reason, status, step="compensated")

    async def _await_capture_decision(self, captured_by_gateway: bool) -> int:
        """Automatic: the merchant's callback confirms. Manual: wait for the capture call, unless
        the gateway captured on its own (then there is nothing left to decide)."""
        s = self._state
        if s.capture_mode is CaptureMode.AUTOMATIC:
            workflow.set_current_details("Waiting for the merchant to confirm the order")
            try:  # a short call to the merchant's own service: local, no server round trip
                decision = await workflow.execute_local_activity_method(
                    MerchantActivities.confirm_order_with_merchant,
                    s,
                    start_to_close_timeout=MERCHANT_TIMEOUT,
                    retry_policy=MERCHANT_RETRY,
                    summary="ask the merchant to confirm the order",
                )
            except (ActivityError, ApplicationError) as error:  # a local activity's: unwrapped
                if isinstance(error, ActivityError):
                    kit.reraise_cancellation(error)
                raise CheckoutAborted(
                    f"merchant confirmation failed: {kit.cause(error)}", PaymentStatus.VOIDED
                ) from None
            if not decision.accepted:
                raise CheckoutAborted(f"merchant refused: {decision.reason}", PaymentStatus.VOIDED)
            await self._record(
                "merchant_confirmed", PaymentStatus.AUTHORIZED, decision.reason, defer=True
            )
            amount = s.amount
        elif captured_by_gateway:
            amount = s.amount
        else:
            workflow.set_current_details("Authorized; waiting for the merchant's capture call")
            await self._await_capture_call()
            requested = self._capture.amount if self._capture else None
            amount = requested if requested is not None else s.amount_authorized
        if self._cancel is not None:
            raise CheckoutAborted(f"canceled: {self._cancel.reason}", PaymentStatus.CANCELED)
        return amount

    async def _await_capture_call(self) -> None:
        """Until the capture window closes, checking the authorization whenever the gateway or an
        operator says it may have changed (e.g. canceled on the dashboard, expired at Stripe)."""
        window = timedelta(seconds=self._request.manual_capture_window_seconds)
        deadline = workflow.now() + window - self._authorization_reviewed_for
        while self._capture is None and self._cancel is None:
            remaining = (deadline - workflow.now()).total_seconds()
            try:
                if remaining <= 0:
                    raise TimeoutError
                await workflow.wait_condition(
                    lambda: (
                        self._capture is not None
                        or self._cancel is not None
                        or self._inbox.any(lambda e: e.kind in _GATEWAY_CHECKS)
                    ),
                    timeout=remaining,
                    timeout_summary="manual capture window",
                )
            except TimeoutError:
                raise CheckoutAborted(
                    "no capture before the capture window closed", PaymentStatus.EXPIRED
                ) from None
            if self._capture is None and self._cancel is None:
                await self._check_authorization_held()

    async def _check_authorization_held(self) -> None:
        self._inbox.drop(lambda e: e.kind in _GATEWAY_CHECKS)
        current = await self._look()
        if current.status is not PaymentStatus.AUTHORIZED:
            raise CheckoutAborted(
                f"the authorization is gone: the gateway says {current.status}",
                PaymentStatus.VOIDED,
            )
        await self._record("reconciled", PaymentStatus.AUTHORIZED, "the authorization still holds")

    async def _hold_for_review(self, reason: str) -> NoReturn:
        """Stop before any capture: an operator looks, and cancels (voids) the payment."""
        s = self._state
        s.last_error = reason
        await self._record("needs_review", PaymentStatus.NEEDS_REVIEW, reason, last_error=reason)
        workflow.set_current_details(f"**needs review**: {reason}. Cancel it to void it.")
        try:
            await workflow.wait_condition(
                lambda: self._cancel is not None,
                timeout=timedelta(seconds=self._request.manual_capture_window_seconds),
                timeout_summary="review window",
            )
        except TimeoutError:
            raise CheckoutAborted(f"{reason}; not reviewed in time", PaymentStatus.VOIDED) from None
        assert self._cancel is not None
        raise CheckoutAborted(f"canceled: {self._cancel.reason}", PaymentStatus.CANCELED)

    async def _capture_payment(self, amount: int) -> GatewayPayment:
        try:
            return await self._capture_at_gateway(amount)
        except ActivityError as error:
            kit.reraise_cancellation(error)
            if not kit.gateway_unavailable(error):
                raise
            return await self._settle_unknown_capture(amount, kit.cause(error))

    async def _settle_unknown_capture(self, amount: int, reason: str) -> GatewayPayment:
        """The capture may or may not have happened: never guess. Look again when the reconciler
        or a webhook says to, or on a timer of its own; capture again only with the same key."""
        s = self._state
        s.last_error = reason
        await self._record(
            "capture_outcome_unknown", PaymentStatus.UNKNOWN,
            f"{reason}; looking again on a timer, a webhook or the reconciler", last_error=reason,
        )  # fmt: skip
        pause = _FIRST_PAUSE
        while True:
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=pause,
                    timeout_summary="look at the capture again",
                )
                self._inbox.pop()
            except TimeoutError:
                pause = min(pause * 2, _LONGEST_PAUSE)
            current = await self._look()
            if current.status is PaymentStatus.CAPTURED:
                return current
            if current.status is not PaymentStatus.AUTHORIZED:
                raise CheckoutAborted(
                    f"the authorization is gone: the gateway says {current.status}",
                    PaymentStatus.VOIDED,
                )
            try:
                return await self._capture_at_gateway(amount)
            except ActivityError as error:
                kit.reraise_cancellation(error)
                if not kit.gateway_unavailable(error):
                    raise

    async def _capture_at_gateway(self, amount: int) -> GatewayPayment:
        s = self._state
        workflow.set_current_details(f"Capturing {format_amount(amount, s.currency)}")
        records = list(self._deferred)  # written with the capture, in its activity
        captured = await workflow.execute_activity_method(
            GatewayActivities.capture_gateway_payment,
            CaptureCheckoutPayment(
                capture=CaptureGatewayPayment(
                    ref=self._ref(),
                    amount=amount,
                    currency=s.currency,
                    idempotency_key=f"{s.workflow_id}-capture",
                ),
                checkout_id=s.checkout_id,
                records=records,
            ),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=GATEWAY_RETRY,
            summary=f"capture {format_amount(amount, s.currency)}",
        )
        self._deferred = self._deferred[len(records) :]
        self._capture_recorded = True
        return captured

    async def _captured(self, captured: GatewayPayment) -> None:
        """The capture is done: in the ledger (the capture activity wrote it, else it is written
        now: a capture the gateway made on its own, or one found after an unknown outcome)."""
        s = self._state
        s.amount_captured = captured.amount_captured
        record = capture_record(
            s.checkout_id, s.gateway, s.gateway_charge_id, captured.amount_captured, s.currency
        )
        if not self._capture_recorded:
            self._deferred.append(record)
            await self._write()
            self._capture_recorded = True
        self._note("captured", PaymentStatus.CAPTURED, record.detail)

    # Risk screening: before the gateway payment and at the authorization,
    # rules over the request, the card and recent history allow, block, or hold for an operator.

    async def _screened_before_create(self) -> bool:
        """False when the checkout ends before any gateway call: blocked, or not approved."""
        s = self._state
        verdict = await self._assess(RiskStage.CREATE, s.authorization_deadline)
        passed = await self._risk_settled(verdict, RiskStage.CREATE)
        if passed and not self._deadline_passed:
            return True
        if passed:  # approved as the authorization deadline passed: too late to pay
            status, step = PaymentStatus.EXPIRED, PaymentStatus.EXPIRED.value
            s.last_error = "deadline passed during the risk review"
        elif self._cancel is not None:
            status, step = PaymentStatus.CANCELED, PaymentStatus.CANCELED.value
        else:
            status = PaymentStatus.FAILED
            blocked = verdict.assessment.decision is RiskDecision.BLOCK
            step = "risk_blocked" if blocked else "risk_rejected"
        await self._record(
            step, status, f"{s.last_error}; nothing was asked of {s.gateway}",
            last_error=s.last_error,
        )  # fmt: skip
        return False

    async def _screen_authorization(self) -> None:
        """Screen the authorization with what the gateway knows of the card; a review ends before
        the authorization's window closes. Raises CheckoutAborted (void) unless it passes."""
        review_by = workflow.now() + authorization_review_time(
            self._request.manual_capture_window_seconds
        )
        verdict = await self._assess(RiskStage.AUTHORIZATION, review_by)
        if not await self._risk_settled(verdict, RiskStage.AUTHORIZATION):
            s = self._state
            status = PaymentStatus.CANCELED if self._cancel else PaymentStatus.VOIDED
            raise CheckoutAborted(s.last_error or "risk screening", status)

    async def _assess(self, stage: RiskStage, review_by: datetime | None) -> RiskVerdict:
        s, r = self._state, self._request
        return await workflow.execute_local_activity_method(
            RiskActivities.assess_checkout_risk,
            AssessCheckout(
                stage=stage, checkout_id=s.checkout_id, workflow_id=s.workflow_id,
                customer_id=s.customer_id, customer_email=r.customer_email,
                client_ip=r.client_ip, customer_country=r.customer_country,
                amount=s.amount, currency=s.currency, gateway=s.gateway.value,
                gateway_payment_id=s.gateway_payment_id, gateway_charge_id=s.gateway_charge_id,
                review_by=review_by,
                new_checkout=NewCheckout(
                    checkout_id=s.checkout_id, workflow_id=s.workflow_id, request=r
                ) if stage is RiskStage.CREATE else None,
            ),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"risk assessment at {stage}",
        )  # fmt: skip

    async def _risk_settled(self, verdict: RiskVerdict, stage: RiskStage) -> bool:
        """True to go on; False (with last_error and risk_reason set) when blocked or rejected."""
        s = self._state
        assessment = verdict.assessment
        if assessment.decision is RiskDecision.ALLOW:
            return True
        s.risk_reason = assessment.reason
        if assessment.decision is RiskDecision.BLOCK:
            s.last_error = f"risk_blocked: {s.risk_reason}"
            return False
        assert verdict.review_deadline is not None
        s.review_deadline = verdict.review_deadline
        self._reviewing = True
        await self._record(
            "risk_review", PaymentStatus.NEEDS_REVIEW,
            f"held for an operator's review ({s.risk_reason}) until"
            f" {verdict.review_deadline:%Y-%m-%d %H:%M:%S} UTC",
        )  # fmt: skip
        self._ready = True  # the API answers: the checkout is under review
        workflow.upsert_search_attributes([search.RISK_DECISION.value_set(RiskDecision.REVIEW)])
        started = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: self._review is not None or self._cancel is not None,
                timeout=max(verdict.review_deadline - workflow.now(), timedelta(seconds=1)),
                timeout_summary="risk review deadline",
            )
        except TimeoutError:
            pass
        review, self._review = self._review, None  # a second review waits for its own
        self._reviewing = False  # no other decision is taken for this one
        if review is not None:
            outcome, reviewer, note = review.outcome, review.reviewer, review.note
            ended = ReviewStatus(outcome.value)
        elif self._cancel is not None:
            outcome, reviewer, note = ReviewOutcome.REJECTED, None, self._cancel.reason
            ended = ReviewStatus.REJECTED
        else:
            outcome, reviewer, note = verdict.review_default, None, "review deadline passed"
            ended = ReviewStatus(f"timed_out_{outcome.value}")
        workflow.upsert_search_attributes([search.RISK_DECISION.value_set(ended.value)])
        await workflow.execute_local_activity_method(
            RiskActivities.record_risk_review,
            RecordReview(
                assessment_id=verdict.assessment_id, status=ended, reviewer=reviewer, note=note
            ),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"record the risk review: {ended}",
        )
        workflow.metric_meter().create_histogram_timedelta(
            "payments_risk_review_time", "From a risk review's start to its end, by stage and end"
        ).record(workflow.now() - started, {"stage": stage.value, "end": ended.value})
        s.review_deadline = None
        if stage is RiskStage.AUTHORIZATION:
            self._authorization_reviewed_for = workflow.now() - started
        if outcome is ReviewOutcome.APPROVED:
            at_authorization = stage is RiskStage.AUTHORIZATION  # "authorized" is written next
            await self._record(
                "risk_approved",
                PaymentStatus.AUTHORIZED if at_authorization else PaymentStatus.CREATED,
                f"risk review {ended}", defer=at_authorization,
            )  # fmt: skip
            s.risk_reason = None
            return True
        s.last_error = (
            f"canceled: {self._cancel.reason}"
            if self._cancel is not None and review is None
            else f"risk_rejected: {s.risk_reason} (review {ended})"
        )
        return False

    # Compensation: it looks at what the gateway holds, so running it twice does nothing twice.

    async def _undo(
        self,
        reason: str,
        status: PaymentStatus,
        *,
        step: str | None = None,
        released: GatewayPayment | None = None,
    ) -> None:
        """End the checkout with nothing at the gateway, whatever path led here: release what is
        open or authorized, refund what is captured (a gateway may capture on its own), then
        record why. `status` is the outcome when no money was taken; `released`, the payment as
        the caller's own look-and-release has just left it (an expiring checkout's)."""
        s = self._state
        detail = reason
        if released is not None:
            detail += f"; the gateway says {released.status}"
        elif s.gateway_payment_id is not None:
            while True:
                current = await self._look()
                if current.status is PaymentStatus.CAPTURED and current.amount_captured:
                    await self._refund(current)
                    break
                if current.status not in _RELEASABLE:
                    break  # canceled, voided, failed: the gateway holds nothing of ours
                try:
                    released = await self._release_at_gateway(reason)
                except ActivityError as error:
                    kit.reraise_cancellation(error)
                    # captured meanwhile (look again and refund), or refused: look again later
                    if not kit.refused_as(error, "already_captured"):
                        await self._record("release_refused", s.status, kit.cause(error))
                        await workflow.sleep(_LONGEST_PAUSE)
                    continue
                detail += f"; the gateway says {released.status}"
                break
        final = (
            PaymentStatus.REFUNDED
            if s.amount_refunded
            else PaymentStatus.CAPTURED
            if s.amount_captured
            else status
        )
        await self._record(step or final.value, final, detail, last_error=s.last_error)

    async def _refund(self, captured: GatewayPayment) -> None:
        """A child RefundWorkflow refunds the capture and settles the ledger (recording the capture
        first when this saga could not); the checkout only notes the outcome."""
        s = self._state
        amount = s.amount_captured = captured.amount_captured
        s.gateway_charge_id = s.gateway_charge_id or captured.ref.gateway_charge_id
        refund: RefundState = await workflow.execute_child_workflow(
            names.REFUND_WORKFLOW,
            RefundRequest(
                payment_id=s.checkout_id,
                amount=amount,
                reason=RefundReason.OTHER,
                note=f"checkout compensation: {s.last_error}",
                mode=RefundMode.COMPENSATION,
                idempotency_key=f"{s.workflow_id}-compensation",
                capture_to_record=0 if self._capture_recorded else amount,
                payment_ref=captured.ref,
            ),
            id=names.compensation_refund_workflow_id(s.checkout_id),
            result_type=RefundState,
            # The refund outlives a terminated checkout: money already moving must be recorded.
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=search.refund_at_start(s.checkout_id),
            static_summary=f"Refund {format_amount(amount, s.currency)} of {s.checkout_id}"
            f" (checkout {s.order_id} compensation)",
        )
        if refund.status is RefundStatus.SUCCEEDED:
            s.amount_refunded = amount
            await self._record(
                "refunded", PaymentStatus.REFUNDED,
                f"refund {refund.refund_id} ({refund.gateway_refund_id}) {refund.status}",
            )  # fmt: skip
        else:
            s.last_error = (
                f"compensation refund {refund.refund_id} {refund.status}: {refund.failure_reason}"
            )
            await self._record(
                "refund_failed", PaymentStatus.CAPTURED, s.last_error, last_error=s.last_error
            )

    async def _release_at_gateway(
        self, reason: str, retry: RetryPolicy = PERSISTENT_RETRY
    ) -> GatewayPayment:
        return await workflow.execute_activity_method(
            GatewayActivities.release_gateway_payment,
            ReleaseGatewayPayment(
                ref=self._ref(), reason=reason, idempotency_key=self._release_key()
            ),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=retry,
            summary=f"release at the gateway: {reason}",
            priority=self._priority,
        )

    # Handlers: they only validate and queue; the run loop above is the one writer.

    @kit.update(names.CHECKOUT_READY)
    async def checkout_ready(self) -> CheckoutState:
        """Answers once the client can pay, the gateway is unavailable for now, or the checkout
        failed; for update-with-start."""
        await workflow.wait_condition(lambda: self._ready or self._state.status in CLOSED_STATUSES)
        return self._state

    @workflow.signal(name=names.PAYMENT_EVENT)
    def payment_event(self, event: PaymentEvent) -> None:
        self._inbox.receive(event)

    @kit.update(names.CANCEL_CHECKOUT)
    async def cancel(self, request: CancelCheckout) -> CheckoutState:
        self._refuse_cancel()  # again: a capture accepted in the same activation wins
        self._cancel = request
        await workflow.wait_condition(lambda: self._state.status in CLOSED_STATUSES)
        return self._state

    @cancel.validator
    def _validate_cancel(self, request: CancelCheckout) -> None:
        self._refuse_cancel()

    def _refuse_cancel(self) -> None:
        if self._capturing or self._capture is not None or self._state.status in CLOSED_STATUSES:
            raise ApplicationError(
                f"checkout is {self._state.status}; only an uncaptured checkout can be canceled",
                type="checkout_not_cancelable",
            )

    @kit.update(names.CAPTURE_CHECKOUT)
    async def capture(self, request: CaptureCheckout) -> CheckoutState:
        self._validate_capture(request)  # again: a cancel accepted in the same activation wins
        self._capture = request
        await workflow.wait_condition(lambda: self._state.status in CLOSED_STATUSES)
        return self._state

    @capture.validator
    def _validate_capture(self, request: CaptureCheckout) -> None:
        s = self._state
        if s.capture_mode is not CaptureMode.MANUAL:
            raise ApplicationError(
                "this checkout captures automatically", type="checkout_not_manual"
            )
        if s.status is not PaymentStatus.AUTHORIZED or self._capture or self._cancel:
            raise ApplicationError(
                f"checkout is {s.status}; only an authorized checkout can be captured",
                type="checkout_not_capturable",
            )
        amount = request.amount if request.amount is not None else s.amount_authorized
        if not 0 < amount <= s.amount_authorized:
            raise ApplicationError(
                f"capture amount must be between 1 and {s.amount_authorized}",
                type="invalid_capture_amount",
            )
        if s.gateway is Gateway.RAZORPAY and amount != s.amount_authorized:
            raise ApplicationError(
                "Razorpay captures only the full authorized amount", type="invalid_capture_amount"
            )

    @kit.update(names.REVIEW_CHECKOUT)
    async def review(self, decision: ReviewDecision) -> CheckoutState:
        self._validate_review(decision)  # again: a decision accepted in the same activation wins
        self._review = decision
        await workflow.wait_condition(
            lambda: not self._reviewing and self._state.status is not PaymentStatus.NEEDS_REVIEW
        )
        return self._state

    @review.validator
    def _validate_review(self, decision: ReviewDecision) -> None:
        if not self._reviewing or self._review is not None or self._cancel is not None:
            raise ApplicationError(
                f"checkout is {self._state.status}; no risk review is waiting for a decision",
                type="no_review_pending",
            )

    @kit.update(names.SWITCH_GATEWAY)
    async def switch_gateway(self, request: SwitchGateway) -> CheckoutState:
        """Answers once the checkout is on the next gateway with what the client needs to pay
        there (or waits for that gateway), or with why it stays: its payment went through."""
        self._validate_switch(request)  # again: a decision accepted in the same activation wins
        self._switch, handled = request, self._switches + 1
        s = self._state
        await workflow.wait_condition(
            lambda: (
                self._switches >= handled
                or s.awaiting_gateway
                or s.status not in _WAITING_FOR_PAYMENT
            )
        )
        if self._switch is request:  # the checkout moved on before the run loop came to it
            self._switch = None
            self._switch_refusal = f"the checkout is {s.status}"
        refusal, self._switch_refusal = self._switch_refusal, None
        if refusal is not None:
            raise ApplicationError(refusal, type="checkout_not_switched")
        return s

    @switch_gateway.validator
    def _validate_switch(self, request: SwitchGateway) -> None:
        s = self._state
        routing = self._request.routing
        if routing is None or not routing.declined_retry:
            raise ApplicationError(
                "this checkout does not move to another gateway after a decline",
                type="gateway_switch_not_allowed",
            )
        if (
            s.status not in _WAITING_FOR_PAYMENT
            or not self._declined_here
            or s.gateway_payment_id is None
            or self._switch is not None
            or self._switching
            or self._cancel is not None
            or self._deadline_passed
        ):
            raise ApplicationError(
                f"checkout is {s.status}; only a checkout whose last attempt was declined can"
                " move to another gateway",
                type="checkout_not_switchable",
            )
        if not self._fallbacks or (request.gateway and request.gateway not in self._fallbacks):
            allowed = ", ".join(self._fallbacks) or "none"
            raise ApplicationError(
                f"routing allows no {request.gateway or 'other gateway'} for this checkout"
                f" (allowed: {allowed})",
                type="gateway_not_allowed",
            )

    @workflow.query(name=names.STATE)
    def state(self) -> CheckoutState:
        return self._state

    # Plumbing

    def _release_key(self) -> str:
        """One per gateway payment: a declined customer's switch left the earlier ones."""
        s = self._state
        return f"{s.workflow_id}-release" + (f"-{len(self._left)}" if self._left else "")

    def _ref(self, charge_id: str | None = None) -> GatewayPaymentRef:
        s = self._state
        assert s.gateway_payment_id is not None
        return GatewayPaymentRef(
            gateway=s.gateway,
            gateway_payment_id=s.gateway_payment_id,
            gateway_charge_id=charge_id or s.gateway_charge_id,
        )

    async def _look(self) -> GatewayPayment:
        """The payment as the gateway holds it now; an outage only delays the answer."""
        return await kit.fetch_payment(self._ref(), persistent=True, priority=self._priority)

    async def _pause(self, pause: timedelta) -> bool:
        """Wait `pause`, or less: False when the authorization deadline came or a cancel."""
        if self._deadline_passed or self._cancel is not None:
            return False
        try:
            await workflow.wait_condition(
                lambda: self._cancel is not None or self._deadline_passed,
                timeout=pause,
                timeout_summary="the gateway again",
            )
        except TimeoutError:
            return not self._deadline_passed
        return False

    async def _create_at_gateway(self) -> GatewayPayment:
        s = self._state
        return await workflow.execute_activity_method(
            GatewayActivities.create_gateway_payment,
            OpenCheckoutPayment(
                payment=CreateGatewayPayment(
                    gateway=s.gateway,
                    checkout_id=s.checkout_id,
                    order_id=s.order_id,
                    workflow_id=s.workflow_id,
                    amount=s.amount,
                    currency=s.currency,
                    customer_email=self._request.customer_email,
                    metadata=self._request.metadata,
                    # a gateway the checkout comes back to (failed over from, then switched to)
                    # must not replay what the first create left there
                    idempotency_key=f"{s.workflow_id}-create"
                    + (f"-{len(self._left)}" if self._left else ""),
                ),
                checkout=NewCheckout(
                    checkout_id=s.checkout_id, workflow_id=s.workflow_id, request=self._request
                ),
                switch=len(self._left),
            ),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=CREATE_RETRY,
            summary=f"create the {s.gateway} payment",
        )

    async def _record_failed_attempt(self, event: PaymentEvent) -> None:
        s = self._state
        s.instructions.next_action = None  # an authentication that failed is over
        attempt = PaymentAttempt(
            at=workflow.now(),
            gateway_attempt_id=event.gateway_charge_id,
            outcome="failed",
            error_code=event.error_code,
            error_message=event.error_message,
        )
        s.attempts.append(attempt)
        s.last_error = f"{event.error_code}: {event.error_message}"
        self._declined_here = True
        await self._record(
            "payment_attempt_failed", PaymentStatus.CREATED,
            f"{s.last_error}; the customer may retry until the deadline",
            attempt=attempt, last_error=s.last_error,
        )  # fmt: skip

    async def _record(
        self,
        step: str,
        status: PaymentStatus,
        detail: str = "",
        *,
        gateway_charge_id: str | None = None,
        last_error: str | None = None,
        attempt: PaymentAttempt | None = None,
        defer: bool = False,
        left: LeftGatewayPayment | None = None,
    ) -> None:
        """Move the checkout to `status` and write the change to the ledger, once: now, or
        (`defer`) with the next write, so that steps in quick succession cost one write."""
        s = self._state
        self._note(step, status, detail, attempt=attempt)
        self._records += 1
        record = CheckoutRecord(
            record_key=f"{s.checkout_id}:{self._records}:{step}",
            checkout_id=s.checkout_id,
            status=status,
            step=step,
            detail=detail,
            gateway_payment_id=s.gateway_payment_id,
            gateway_charge_id=gateway_charge_id,
            last_error=last_error,
            attempt=attempt,
            left=left,
        )
        self._deferred.append(record)
        if not defer:
            await self._write()

    def _note(
        self,
        step: str,
        status: PaymentStatus,
        detail: str,
        *,
        attempt: PaymentAttempt | None = None,
    ) -> None:
        """Move the checkout to `status` in its own state and the operator's view; the ledger
        write is `_record`'s (or an activity's that wrote the step itself)."""
        s = self._state
        s.status = status
        if attempt is not None and attempt not in s.attempts:
            s.attempts.append(attempt)
        s.history.append(CheckoutStep(at=workflow.now(), step=step, status=status, detail=detail))
        kit.show(status, step, detail)
        self._publish()

    async def _write(self) -> None:
        """Write the steps not written yet, in one local activity; steps a cancellation cut
        short are written again (the ledger applies a record key once)."""
        if not self._deferred:
            return
        records = list(self._deferred)
        await workflow.execute_local_activity_method(
            LedgerActivities.record_checkout_steps,
            records,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"record {', '.join(r.step for r in records)}",
        )
        self._deferred = self._deferred[len(records) :]

    def _publish(self) -> None:
        """What operators search in the Temporal UI, kept current where it matters: each upsert
        is a billed Temporal action, so only states an operator looks for are published (the
        API sets the attributes at start): a manual capture waiting, a review, an unknown
        outcome, and the end. Current details (free) follow every step."""
        s = self._state
        waiting = s.status is PaymentStatus.AUTHORIZED and s.capture_mode is CaptureMode.MANUAL
        if s.status is self._published or not (
            waiting or s.status in _PUBLISHED or s.status in CLOSED_STATUSES
        ):
            return
        self._published = s.status
        workflow.upsert_search_attributes([search.PAYMENT_STATUS.value_set(s.status.value)])
        workflow.upsert_memo(
            {
                "captured": format_amount(s.amount_captured, s.currency),
                "refunded": format_amount(s.amount_refunded, s.currency),
                "gateway_payment_id": s.gateway_payment_id,
                "gateway_charge_id": s.gateway_charge_id,
                "last_error": s.last_error,
            }
        )

    def _describe_amount(self) -> str:
        s = self._state
        routed = f" ({s.routing_reason})" if s.routing_reason else ""
        return f"{format_amount(s.amount, s.currency)} via {s.gateway}{routed}"
