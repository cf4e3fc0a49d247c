"""Refund saga: reserve the amount in the ledger → create the refund at the gateway (idempotency
key: our refund id) → wait for its final status (webhook signals, with polling as the fallback) →
settle the ledger, or release the reservation and record why.

An observed refund (made at the gateway's dashboard) skips the gateway call; a checkout's
compensation runs this workflow as a child."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate, VersioningBehavior
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from activities.payments import GatewayActivities
    from domain import names
    from domain.checkout import GatewayPaymentRef, PaymentStatus
    from domain.money import format_amount
    from domain.refund import (
        FINAL_REFUND_STATUSES,
        CreateGatewayRefund,
        GatewayRefund,
        GatewayRefundRef,
        RefundAtGateway,
        RefundEffect,
        RefundEvent,
        RefundMode,
        RefundRecord,
        RefundRequest,
        RefundReservation,
        RefundSoFar,
        RefundState,
        RefundStatus,
        RefundStep,
        refund_id_for,
        refund_step,
    )
    from workflows import kit
    from workflows import search_attributes as search
    from workflows.policies import GATEWAY_TIMEOUT, LEDGER_TIMEOUT, PERSISTENT_RETRY


# Auto-upgrade: a pending refund may wait for weeks, longer than an old build should run; it moves
# to the current build, so a change must keep its histories replaying (tests/test_replay.py).

FEWER_ACTIONS = "refund-fewer-actions"
"""Runs begun since this patch publish their status only when it changes to one an operator
looks for, keep their details in one memo, and create the refund and write its answer in one
activity (`refund_and_record`). Runs begun before keep their recorded shape to the end: memo
changes at each stage, search attributes at every step, `refund_gateway_payment` then a ledger
step. Deprecate once no refund begun before it is running."""


@workflow.defn(name=names.REFUND_WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class RefundWorkflow:
    @workflow.init
    def __init__(self, request: RefundRequest) -> None:
        info = workflow.info()
        self._state = request.carried or RefundState(
            refund_id=refund_id_for(info.workflow_id),
            workflow_id=info.workflow_id,
            payment_id=request.payment_id,
            mode=request.mode,
            status=RefundStatus.PENDING,
            reason=request.reason,
            note=request.note,
            amount=request.amount or 0,
            gateway=request.gateway,
            gateway_refund_id=request.gateway_refund_id,
        )
        self._decided = request.carried is not None
        self._asked_gateway = request.carried is not None
        self._published: RefundStatus | None = None
        self._unwritten: RefundRecord | None = None
        self._inbox: kit.SignalInbox[RefundEvent] = kit.SignalInbox(self._state.seen_events)

    # The story

    @workflow.run
    async def run(self, request: RefundRequest) -> RefundState:
        s = self._state
        self._lean = workflow.patched(FEWER_ACTIONS)
        try:
            if request.carried is None:
                await self._begin(request)
            if s.status not in FINAL_REFUND_STATUSES:
                await self._await_final_status(request)
        except BaseException as error:  # a cancellation may arrive as an activity's
            if not is_cancelled_exception(error):
                raise
            # Canceled through Temporal: a refund the gateway has is followed to its end (it
            # cannot be called back); a reservation that never reached the gateway is released.
            await kit.shielded(self._finish_canceled(request))
            raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s

    async def _begin(self, request: RefundRequest) -> None:
        s = self._state
        if not self._lean:
            workflow.upsert_memo(
                {"payment_id": s.payment_id, "refund_id": s.refund_id, "mode": s.mode.value}
            )
        observed = await self._observe() if s.mode is RefundMode.OBSERVED else None
        if s.mode is RefundMode.LATE_PAYMENT and not await self._observe_late_payment(request):
            return
        # A retried reservation of a refund already settled (a second observed run of the same
        # gateway refund) finds it final: nothing is left to do.
        if await self._reserve(request) and s.status not in FINAL_REFUND_STATUSES:
            if observed is not None:
                await self._apply(observed, "observed_at_gateway")
            elif s.gateway_refund_id is None:
                await self._create_at_gateway(request)

    async def _observe_late_payment(self, request: RefundRequest) -> bool:
        """Money the gateway took for a checkout that had ended without it: the gateway says how
        much (the event that started us is a hint); nothing captured, nothing to give back."""
        s = self._state
        assert request.payment_ref is not None
        payment = await kit.fetch_payment(request.payment_ref, persistent=True)
        if payment.status is not PaymentStatus.CAPTURED or not payment.amount_captured:
            s.status, s.refusal_code = RefundStatus.REFUSED, "nothing_captured"
            s.failure_reason = f"the gateway says the late payment is {payment.status}"
            self._decided = True
            self._step("refund_refused", s.failure_reason)
            return False
        request.capture_to_record = payment.amount_captured
        self._inbox.clear()  # what the starting event said, the fetch has just read
        return True

    async def _finish_canceled(self, request: RefundRequest) -> None:
        """What a canceled refund leaves: nothing in flight. A reservation whose answer never
        came is read again (the ledger is idempotent); a refund the gateway may have received is
        asked for again with the same refund id (so never twice) and followed to its end; one it
        never received is released."""
        s = self._state
        if self._unwritten is not None:
            await self._write(self._unwritten)
        if s.status in FINAL_REFUND_STATUSES:
            return
        if not self._decided:
            if s.mode is RefundMode.LATE_PAYMENT and not request.capture_to_record:
                return  # canceled before the late payment was looked at: nothing reserved
            if not await self._reserve(request) or s.status in FINAL_REFUND_STATUSES:
                return
        if s.gateway_refund_id is None and s.mode is not RefundMode.OBSERVED:
            if not self._asked_gateway:
                await self._record(
                    "canceled_before_gateway", RefundStatus.CANCELED,
                    "the refund's workflow was canceled before the gateway was asked",
                    RefundEffect.RELEASE, failure_reason="workflow canceled",
                )  # fmt: skip
                return
            await self._create_at_gateway(request)
        if s.status not in FINAL_REFUND_STATUSES:  # look now: the event being handled is lost
            await self._apply(await self._fetch(), "gateway_looked_up")
        if s.status not in FINAL_REFUND_STATUSES:
            await self._await_final_status(request, continue_as_new=False)

    async def _observe(self) -> GatewayRefund:
        """A refund made elsewhere: the webhook is a hint, the gateway tells the amount."""
        s = self._state
        assert s.gateway is not None and s.gateway_refund_id is not None
        refund = await self._fetch()
        s.amount = refund.amount
        if not self._lean:
            workflow.upsert_memo({"gateway_refund_id": refund.gateway_refund_id})
        self._inbox.clear()  # what the starting event said, the fetch has just read
        return refund

    async def _reserve(self, request: RefundRequest) -> bool:
        s = self._state
        outcome = await workflow.execute_local_activity_method(
            LedgerActivities.reserve_refund,
            RefundReservation(
                refund_id=s.refund_id,
                workflow_id=s.workflow_id,
                payment_id=s.payment_id,
                amount=s.amount if s.mode is RefundMode.OBSERVED else request.amount,
                reason=s.reason,
                note=s.note,
                mode=s.mode,
                idempotency_key=request.idempotency_key,
                gateway_refund_id=s.gateway_refund_id,
                capture_to_record=request.capture_to_record,
                payment_ref=request.payment_ref,
            ),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary="reserve the amount in the ledger",
        )
        self._decided = True
        if not outcome.accepted:
            s.status, s.refusal_code, s.failure_reason = (
                RefundStatus.REFUSED, outcome.refusal_code, outcome.detail,
            )  # fmt: skip
            self._step("refund_refused", f"{outcome.refusal_code}: {outcome.detail}")
            return False
        assert outcome.gateway is not None and outcome.currency is not None
        s.status, s.amount, s.currency, s.gateway = (
            outcome.status, outcome.amount, outcome.currency, outcome.gateway,
        )  # fmt: skip
        s.gateway_payment_id = outcome.gateway_payment_id
        s.gateway_charge_id = outcome.gateway_charge_id
        s.gateway_refund_id = s.gateway_refund_id or outcome.gateway_refund_id
        if not self._lean:
            workflow.upsert_memo(
                {
                    "amount": s.amount,
                    "currency": s.currency,
                    "gateway": s.gateway.value,
                    "gateway_payment_id": s.gateway_payment_id,
                }
            )
        self._step("refund_reserved", f"{self._describe_amount()} reserved on {s.payment_id}")
        return True

    async def _create_at_gateway(self, request: RefundRequest) -> None:
        s = self._state
        assert s.gateway is not None and s.currency is not None and s.gateway_payment_id
        workflow.set_current_details(f"Creating the refund of {self._describe_amount()}")
        self._asked_gateway = True
        refund = CreateGatewayRefund(
            ref=request.payment_ref
            or GatewayPaymentRef(
                gateway=s.gateway,
                gateway_payment_id=s.gateway_payment_id,
                gateway_charge_id=s.gateway_charge_id,
            ),
            refund_id=s.refund_id,
            workflow_id=s.workflow_id,
            payment_id=s.payment_id,
            amount=s.amount,
            currency=s.currency,
            reason=s.reason,
        )
        # An unknown outcome must never end in a release: the refund may exist. Retry (same
        # refund id, so never twice) until the gateway answers yes or no.
        summary = f"refund {self._describe_amount()} at {s.gateway}"
        try:
            if not self._lean:
                made = await workflow.execute_activity_method(
                    GatewayActivities.refund_gateway_payment, refund,
                    start_to_close_timeout=GATEWAY_TIMEOUT, retry_policy=PERSISTENT_RETRY,
                    summary=summary,
                )  # fmt: skip
                await self._apply(made, "gateway_refund_created")
                return
            answer = await workflow.execute_activity_method(
                GatewayActivities.refund_and_record,
                RefundAtGateway(refund=refund, so_far=self._so_far()),
                start_to_close_timeout=GATEWAY_TIMEOUT,
                retry_policy=PERSISTENT_RETRY,
                summary=summary,
            )
        except ActivityError as error:
            kit.reraise_cancellation(error)
            reason = kit.cause(error)
            await self._record(
                "gateway_refused", RefundStatus.FAILED, reason, RefundEffect.RELEASE,
                failure_reason=reason,
            )  # fmt: skip
            return
        s.gateway_refund_id = answer.refund.gateway_refund_id
        if answer.record is not None:  # written by the activity
            self._take(answer.record)
            s.payment_status = answer.payment_status
            self._publish()
        s.speed = answer.refund.speed or s.speed

    async def _await_final_status(
        self, request: RefundRequest, *, continue_as_new: bool = True
    ) -> None:
        """Webhooks say when to look; a timer looks anyway when none comes."""
        s = self._state
        interval = timedelta(seconds=request.poll_interval_seconds)
        polls_this_run = 0
        while s.status not in FINAL_REFUND_STATUSES:
            workflow.set_current_details(
                f"**{s.status}**: waiting for {s.gateway} to settle refund {s.gateway_refund_id}"
                f" (webhook, or a look every {interval})"
            )
            try:
                await workflow.wait_condition(
                    lambda: bool(self._inbox),
                    timeout=interval,
                    timeout_summary="refund status poll",
                )
                event_type = self._inbox.pop().event_type
                step = "reconciled" if event_type == "reconcile" else "webhook_" + event_type
                step = step.replace(".", "_")
            except TimeoutError:
                s.polls += 1
                step = "gateway_polled"
            await self._apply(await self._fetch(), step)
            if s.status in FINAL_REFUND_STATUSES or self._inbox:
                continue
            polls_this_run += step == "gateway_polled"
            if continue_as_new and kit.continue_as_new_due(polls_this_run):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(request.model_copy(update={"carried": s}))

    async def _apply(self, refund: GatewayRefund, step: str) -> None:
        """Move to what the gateway says; settle or release once the refund is final."""
        s = self._state
        record = refund_step(self._so_far(), refund, step)
        if not self._lean and s.gateway_refund_id != refund.gateway_refund_id:
            workflow.upsert_memo({"gateway_refund_id": refund.gateway_refund_id})
        s.gateway_refund_id = refund.gateway_refund_id
        if record is not None:
            self._take(record)
            await self._write(record)
        s.speed = refund.speed or s.speed

    # Handlers: they only validate and queue; the run loop above is the one writer.

    @kit.update(names.REFUND_RESERVATION)
    async def reservation(self) -> RefundState:
        """Answers once the ledger reserved the amount or refused it, for update-with-start."""
        await workflow.wait_condition(lambda: self._decided)
        return self._state

    @workflow.signal(name=names.REFUND_EVENT)
    def refund_event(self, event: RefundEvent) -> None:
        self._inbox.receive(event)

    @workflow.query(name=names.STATE)
    def state(self) -> RefundState:
        return self._state

    # Plumbing

    async def _fetch(self) -> GatewayRefund:
        s = self._state
        assert s.gateway is not None and s.gateway_refund_id is not None
        return await kit.fetch_refund(
            GatewayRefundRef(gateway=s.gateway, gateway_refund_id=s.gateway_refund_id)
        )

    def _step(self, step: str, detail: str, *, publish: bool = True) -> None:
        s = self._state
        s.history.append(RefundStep(at=workflow.now(), step=step, status=s.status, detail=detail))
        kit.show(s.status, step, detail)
        if publish or not self._lean:
            self._publish()

    def _publish(self) -> None:
        """The refund appears next to its payment in the Temporal UI (`PaymentId = "pay_…"`, set
        at its start with `RefundStatus = "pending"`); its status is published when it changes
        to one an operator looks for (each upsert is a billed Temporal action)."""
        s = self._state
        if self._lean and (s.status is self._published or s.status is RefundStatus.PENDING):
            return
        self._published = s.status
        updates: list[SearchAttributeUpdate[Any]] = [search.REFUND_STATUS.value_set(s.status.value)]
        if not self._lean:
            updates.insert(0, search.PAYMENT_ID.value_set(s.payment_id))
        if s.gateway is not None:
            updates.append(search.GATEWAY.value_set(s.gateway.value))
        if s.payment_status is not None:  # the payment's status after this refund's step
            updates.append(search.PAYMENT_STATUS.value_set(s.payment_status.value))
        if s.currency is not None:
            updates += [
                search.AMOUNT_MINOR.value_set(s.amount),
                search.CURRENCY.value_set(s.currency),
            ]
        workflow.upsert_search_attributes(updates)
        if not self._lean:
            return
        workflow.upsert_memo(
            {
                "refund_id": s.refund_id,
                "mode": s.mode.value,
                "amount": format_amount(s.amount, s.currency) if s.currency else None,
                "gateway_payment_id": s.gateway_payment_id,
                "gateway_refund_id": s.gateway_refund_id,
            }
        )

    def _so_far(self) -> RefundSoFar:
        s = self._state
        assert s.gateway is not None
        return RefundSoFar(
            refund_id=s.refund_id, payment_id=s.payment_id, gateway=s.gateway, amount=s.amount,
            status=s.status, steps=len(s.history), gateway_refund_id=s.gateway_refund_id,
            speed=s.speed,
        )  # fmt: skip

    def _take(self, record: RefundRecord) -> None:
        """The refund moves as a record says (written, or about to be)."""
        s = self._state
        s.status = record.status
        if record.failure_reason is not None:
            s.failure_reason = record.failure_reason
        # published once written, with the payment's status after it
        self._step(record.step, record.detail, publish=False)

    async def _record(
        self,
        step: str,
        status: RefundStatus,
        detail: str,
        effect: RefundEffect = RefundEffect.NONE,
        *,
        failure_reason: str | None = None,
    ) -> None:
        """Move the refund to `status` and write the step to the ledger, once."""
        s = self._state
        record = RefundRecord(
            record_key=f"{s.refund_id}:{len(s.history) + 1}:{step}",
            refund_id=s.refund_id,
            payment_id=s.payment_id,
            step=step,
            status=status,
            detail=detail,
            effect=effect,
            gateway_refund_id=s.gateway_refund_id,
            failure_reason=failure_reason,
        )
        self._take(record)
        await self._write(record)

    async def _write(self, record: RefundRecord) -> None:
        """Write a step to the ledger; one a cancellation cut short is written again (the ledger
        applies a record key once), so the ledger never misses a settled refund."""
        self._unwritten = record
        self._state.payment_status = await workflow.execute_local_activity_method(
            LedgerActivities.record_refund_step,
            record,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"record {record.step}",
        )
        self._unwritten = None
        self._publish()

    def _describe_amount(self) -> str:
        s = self._state
        if s.currency is None:
            return "the amount"
        return format_amount(s.amount, s.currency)
