"""Dispute saga: look the dispute up at the gateway → record it against its payment (marked
disputed, funds withdrawn posted) → tell the merchant → wait for an operator's evidence or
acceptance (validated updates), acting by policy a margin before the evidence deadline (never at
once, and conceding only what is safe to concede) → wait for the outcome (webhook signals, with
polling as the fallback) → settle the ledger and tell the merchant. Disputes last weeks: a run
continues as new when the history grows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate, VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.disputes import DisputeActivities
    from activities.ledger import LedgerActivities
    from domain import names
    from domain.checkout import Gateway
    from domain.dispute import (
        FINAL_DISPUTE_STATUSES,
        STAGE_ORDER,
        AcceptDispute,
        DeadlinePolicy,
        DisputeEvent,
        DisputeEvidence,
        DisputeOpening,
        DisputeRecord,
        DisputeRequest,
        DisputeStage,
        DisputeState,
        DisputeStatus,
        DisputeStep,
        GatewayDispute,
        GatewayDisputeAcceptance,
        GatewayDisputeRef,
        GatewayEvidence,
        MerchantDisputeNotice,
        SubmitEvidence,
        UnverifiedDispute,
        dispute_id_for,
        status_rank,
    )
    from domain.money import format_amount
    from domain.names import DISPUTE_DEADLINE_GUARD
    from workflows import kit
    from workflows import search_attributes as search
    from workflows.policies import (
        GATEWAY_TIMEOUT,
        LEDGER_TIMEOUT,
        MERCHANT_RETRY,
        MERCHANT_TIMEOUT,
        PERSISTENT_RETRY,
    )


# How the adapters say "no such dispute" (Stripe `resource_missing`; Razorpay answers a plain bad
# request, "The id provided does not exist").
_NOT_FOUND = ("invalid_request:resource_missing", "invalid_request")


# Auto-upgrade: a dispute lasts weeks, longer than an old build should run; it moves to the
# current build, so a change must keep its histories replaying (tests/test_replay.py).
@workflow.defn(name=names.DISPUTE_WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class DisputeWorkflow:
    @workflow.init
    def __init__(self, request: DisputeRequest) -> None:
        info = workflow.info()
        self._state = request.carried or DisputeState(
            dispute_id=dispute_id_for(info.workflow_id),
            workflow_id=info.workflow_id,
            gateway=request.gateway,
            gateway_dispute_id=request.gateway_dispute_id,
        )
        self._ready = request.carried is not None
        self._inbox: kit.SignalInbox[DisputeEvent] = kit.SignalInbox(self._state.seen_events)
        self._command: SubmitEvidence | AcceptDispute | None = None
        self._command_error: ApplicationError | None = None

    # The story

    @workflow.run
    async def run(self, request: DisputeRequest) -> DisputeState:
        s = self._state
        settled = False
        if request.carried is None:
            workflow.upsert_memo(
                {"dispute_id": s.dispute_id, "gateway_dispute_id": s.gateway_dispute_id}
            )
            settled = await self._open()
        polls_this_run = 0
        while s.status not in FINAL_DISPUTE_STATUSES:
            polled = await self._next(request)
            polls_this_run += polled
            if self._inbox or self._command is not None:
                continue
            if kit.continue_as_new_due(polls_this_run):
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() and self._command is None
                )
                if not self._inbox:
                    workflow.continue_as_new(request.model_copy(update={"carried": s}))
        if not settled:
            await self._notify("dispute.closed")
        flagged = f"; flagged for an operator: {s.flagged}" if s.flagged else ""
        workflow.set_current_details(f"**{s.status}**: {self._describe()}{flagged}")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s

    async def _open(self) -> bool:
        """Record the dispute as the gateway tells it (the webhook that started us is a hint).
        True when nothing is left to do: the ledger holds it final already (a late webhook of a
        closed dispute), or the gateway does not know it."""
        s = self._state
        try:
            dispute = await self._fetch()
        except ActivityError as error:
            kit.reraise_cancellation(error)
            if not kit.refused_as(error, *_NOT_FOUND):
                raise  # e.g. a misconfigured key: a failed workflow an operator sees at once
            assert isinstance(error.cause, ApplicationError)
            await self._flag_unverified(error.cause)
            return True
        self._inbox.clear()  # what the queued events said, the fetch has just read
        s.gateway_payment_id = dispute.gateway_payment_id
        s.amount, s.currency, s.reason = dispute.amount, dispute.currency, dispute.reason
        s.stage, s.due_by = dispute.stage, dispute.due_by
        opened = await workflow.execute_activity_method(
            LedgerActivities.open_dispute,
            DisputeOpening(dispute_id=s.dispute_id, workflow_id=s.workflow_id, dispute=dispute),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary="record the dispute in the ledger",
        )
        s.payment_id, s.payment_status, s.flagged = (
            opened.payment_id, opened.payment_status, opened.flagged,
        )  # fmt: skip
        s.submitted, s.amount_withdrawn = opened.submitted, opened.amount_withdrawn
        workflow.upsert_memo(
            {"payment_id": s.payment_id, "amount": s.amount, "currency": s.currency,
             "gateway": s.gateway.value}
        )  # fmt: skip
        self._ready = True
        if opened.status in FINAL_DISPUTE_STATUSES:
            s.status = opened.status
            self._step("already_recorded", f"the ledger holds this dispute {s.status} already")
            return True
        detail = f"{self._describe()}, respond by {_when(s.due_by)}"
        if s.flagged:
            detail += f"; flagged for an operator: {s.flagged}"
        self._step("dispute_opened", detail)
        await self._notify("dispute.opened")
        await self._apply(dispute, "gateway_fetched")
        return False

    async def _flag_unverified(self, refusal: ApplicationError) -> None:
        """The gateway refused for good to show the dispute an event named (it does not know
        it): there is nothing to record, so an operator gets a flag and the saga ends."""
        s = self._state
        s.status, self._ready = DisputeStatus.UNVERIFIED, True
        s.flagged = (
            f"{s.gateway} does not show dispute {s.gateway_dispute_id} ({kit.cause(refusal)});"
            " nothing was recorded: check the event with the gateway"
        )
        await workflow.execute_activity_method(
            LedgerActivities.flag_unverified_dispute,
            UnverifiedDispute(
                dispute_id=s.dispute_id,
                workflow_id=s.workflow_id,
                gateway=s.gateway,
                gateway_dispute_id=s.gateway_dispute_id,
                gateway_answer=refusal.type or "refused",
                detail=s.flagged,
            ),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary="flag the unverified dispute for an operator",
        )
        self._step("dispute_unverified", s.flagged)

    async def _next(self, request: DisputeRequest) -> int:
        """One turn: an operator's command, a webhook, the deadline or a poll. Returns 1 when it
        polled."""
        s = self._state
        interval = timedelta(seconds=request.poll_interval_seconds)
        act_at = self._deadline_action_at(request)
        if act_at is not None and workflow.now() >= act_at and self._command is None:
            await self._act_on_deadline(request)
            return 0
        wait = interval if act_at is None else min(interval, act_at - workflow.now())
        wait = max(wait, timedelta(seconds=1))
        workflow.set_current_details(
            f"**{s.status}**: {self._describe()}; waiting for "
            + ("an operator's evidence or acceptance" if s.status is DisputeStatus.OPEN else "")
            + (f" (deadline {_when(s.due_by)}, policy acts at {_when(act_at)})" if act_at else "")
            + (" and " if s.status is DisputeStatus.OPEN else "")
            + f"the gateway's decision (webhook, or a look every {interval})"
            + (f"; the deadline policy left it: {s.deadline_reason}" if s.deadline_reason else "")
        )
        try:
            await workflow.wait_condition(
                lambda: bool(self._inbox) or self._command is not None,
                timeout=wait,
                timeout_summary="dispute deadline or status poll",
            )
        except TimeoutError:
            if act_at is not None and workflow.now() >= act_at:
                return 0  # the next turn acts on the deadline
            s.polls += 1
            await self._apply(await self._fetch(), "gateway_polled")
            return 1
        if self._command is not None:
            await self._run_command(self._command)
            return 0
        event = self._inbox.pop()
        step = "webhook_" + event.event_type.replace(".", "_")
        await self._apply(await self._fetch(), step, reopen=event.asks_for_resubmission)
        return 0

    def _deadline_action_at(self, request: DisputeRequest) -> datetime | None:
        s = self._state
        if (
            s.due_by is None
            or s.deadline_action is not None
            or s.submitted
            or s.accepted
            or s.status is not DisputeStatus.OPEN
        ):
            return None
        act_at = s.due_by - timedelta(seconds=request.deadline_margin_seconds)
        opened = self._opened_at()
        if act_at < opened and workflow.patched(DISPUTE_DEADLINE_GUARD):
            # It arrived with less than the margin left: operators get half of what remains.
            return opened + (s.due_by - opened) / 2
        return act_at

    async def _act_on_deadline(self, request: DisputeRequest) -> None:
        """Nobody decided in time: submit the draft if there is one, else the policy's choice;
        a dispute it must not concede is left to an operator, saying why."""
        s = self._state
        try:
            if s.evidence is not None and not s.evidence.is_empty():
                s.deadline_action = "submitted_draft"
                await self._send_evidence(s.evidence, True, "deadline_submitted_draft")
            elif request.deadline_policy is DeadlinePolicy.SUBMIT_DRAFT_ELSE_ACCEPT:
                keep = await self._why_not_concede(request)
                if keep is None:
                    s.deadline_action = "accepted"
                    await self._accept("deadline_accepted")
                else:
                    await self._leave(f"not conceded, {keep}")
            else:
                await self._leave("no draft evidence to submit (policy: submit_draft_else_leave)")
        except ActivityError as error:
            await self._record(
                "deadline_action_refused", s.status, f"{s.deadline_action}: {kit.cause(error)}"
            )

    async def _why_not_concede(self, request: DisputeRequest) -> str | None:
        """Why the policy must not concede this dispute, or None. It concedes only a dispute
        operators have known for at least the margin, that is not flagged, and whose payment has
        nothing refunded or pending: conceding then could pay the customer twice."""
        if not workflow.patched(DISPUTE_DEADLINE_GUARD):
            return None  # histories from before the guard conceded by the policy alone
        s = self._state
        margin = timedelta(seconds=request.deadline_margin_seconds)
        if workflow.now() - self._opened_at() < margin:
            return f"it arrived {_when(self._opened_at())}, less than the margin ({margin}) ago"
        if s.flagged:
            return f"it is flagged: {s.flagged}"
        payment = await workflow.execute_activity_method(
            LedgerActivities.read_disputed_payment,
            s.dispute_id,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary="read the disputed payment's refunds",
        )
        if payment is None:
            return "no payment of ours is known for it"
        if payment.amount_refunded or payment.amount_refund_pending:
            refunded = format_amount(payment.amount_refunded, payment.currency)
            pending = format_amount(payment.amount_refund_pending, payment.currency)
            return f"its payment has {refunded} refunded and {pending} pending"
        return None

    async def _leave(self, reason: str) -> None:
        s = self._state
        s.deadline_action = "left"
        s.deadline_reason = (
            f"{reason}; an operator may still decide until {_when(s.due_by)}, else the issuer will"
        )
        await self._record("deadline_left", s.status, s.deadline_reason)

    async def _run_command(self, command: SubmitEvidence | AcceptDispute) -> None:
        s = self._state
        try:
            if isinstance(command, SubmitEvidence):
                step = "evidence_submitted" if command.submit else "evidence_saved"
                await self._send_evidence(command.evidence, command.submit, step, command.note)
            else:
                await self._accept("operator_accepted", command.note)
        except ActivityError as error:
            reason = kit.cause(error)
            s.last_error = reason
            self._command_error = ApplicationError(reason, type="gateway_refused")
            await self._record("gateway_refused", s.status, reason)
        finally:
            self._command = None

    async def _send_evidence(
        self, evidence: DisputeEvidence, submit: bool, step: str, note: str | None = None
    ) -> None:
        s = self._state
        dispute = await workflow.execute_activity_method(
            DisputeActivities.submit_gateway_dispute_evidence,
            GatewayEvidence(
                ref=self._ref(),
                evidence=evidence,
                submit=submit,
                idempotency_key=f"{s.dispute_id}-evidence-{len(s.history)}",
            ),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"{'submit' if submit else 'save'} the evidence at {s.gateway}",
        )
        s.evidence = evidence
        s.submitted = s.submitted or submit
        documents = len(evidence.documents())
        detail = f"{'submitted' if submit else 'draft saved'} with {documents} document(s)"
        await self._apply(dispute, step, forced=detail + (f": {note}" if note else ""))

    async def _accept(self, step: str, note: str | None = None) -> None:
        s = self._state
        dispute = await workflow.execute_activity_method(
            DisputeActivities.accept_gateway_dispute,
            GatewayDisputeAcceptance(ref=self._ref(), idempotency_key=f"{s.dispute_id}-accept"),
            start_to_close_timeout=GATEWAY_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"accept the dispute at {s.gateway}",
        )
        s.accepted = True
        await self._apply(dispute, step, forced="conceded" + (f": {note}" if note else ""))

    async def _apply(
        self, dispute: GatewayDispute, step: str, *, reopen: bool = False, forced: str = ""
    ) -> None:
        """Move forward to what the gateway says (a terminal status absorbs everything later);
        the funds follow what the gateway moved until the outcome fixes them."""
        s = self._state
        if s.status in FINAL_DISPUTE_STATUSES:
            return
        status = s.status
        if status_rank(dispute.status) > status_rank(s.status):
            status = dispute.status
        elif reopen and dispute.status is DisputeStatus.OPEN and s.submitted:
            status = DisputeStatus.OPEN  # Razorpay asks for the evidence again
            s.submitted = False
        stage = max(s.stage, dispute.stage, key=STAGE_ORDER.index)
        due_by = dispute.due_by or s.due_by
        net = dispute.amount_withdrawn - dispute.amount_reinstated
        target: int | None = net if net != s.amount_withdrawn else None
        if status is DisputeStatus.LOST:
            target = s.amount  # lost: the withdrawal stays, whether or not it was seen yet
        elif status in (DisputeStatus.WON, DisputeStatus.PREVENTED):
            target = 0  # won: whatever was withdrawn is reinstated
        reopened = status is DisputeStatus.OPEN and s.status is DisputeStatus.CHALLENGED
        changed = (status, stage, due_by) != (s.status, s.stage, s.due_by) or reopened
        if not (changed or forced or target is not None):
            return
        s.stage, s.due_by = stage, due_by
        detail = forced or f"{s.gateway} says {dispute.gateway_status} ({stage})"
        if reopened:
            detail += "; the gateway asks for the evidence again"
        await self._record(step, status, detail, withdrawn_target=target)

    # Handlers: they only validate and queue; the run loop above is the one writer.

    @workflow.signal(name=names.DISPUTE_EVENT)
    def dispute_event(self, event: DisputeEvent) -> None:
        self._inbox.receive(event)

    @kit.update(names.SUBMIT_DISPUTE_EVIDENCE)
    async def submit_evidence(self, request: SubmitEvidence) -> DisputeState:
        """Save the evidence as a draft, or submit it; answers once the gateway has it."""
        return await self._command_done(request)

    @submit_evidence.validator
    def _validate_evidence(self, request: SubmitEvidence) -> None:
        self._refuse_unless_open()
        if request.submit and request.evidence.is_empty():
            raise ApplicationError("there is no evidence to submit", type="evidence_incomplete")
        if request.submit and self._state.gateway is Gateway.RAZORPAY:
            if not request.evidence.documents():
                raise ApplicationError(
                    "Razorpay contests only with at least one document",
                    type="evidence_incomplete",
                )

    @kit.update(names.ACCEPT_DISPUTE)
    async def accept(self, request: AcceptDispute) -> DisputeState:
        """Concede the dispute at the gateway; answers once the gateway has closed it."""
        return await self._command_done(request)

    @accept.validator
    def _validate_accept(self, request: AcceptDispute) -> None:
        self._refuse_unless_open()

    @workflow.query(name=names.STATE)
    def state(self) -> DisputeState:
        return self._state

    def _refuse_unless_open(self) -> None:
        s = self._state
        refusal: tuple[str, str] | None = None
        if not self._ready:
            return  # the handler checks again once the dispute is recorded
        if s.status in FINAL_DISPUTE_STATUSES:
            refusal = ("dispute_closed", f"the dispute is {s.status}")
        elif s.accepted:
            refusal = ("dispute_accepted", "the dispute was accepted")
        elif s.submitted or s.status is not DisputeStatus.OPEN:
            refusal = ("evidence_already_submitted", "the evidence has been submitted")
        elif s.due_by is not None and workflow.now() >= s.due_by:
            refusal = ("evidence_deadline_passed", f"the deadline was {_when(s.due_by)}")
        elif self._command is not None:
            refusal = ("dispute_busy", "another decision on this dispute is being carried out")
        if refusal is not None:
            raise ApplicationError(refusal[1], type=refusal[0])

    async def _command_done(self, command: SubmitEvidence | AcceptDispute) -> DisputeState:
        await workflow.wait_condition(lambda: self._ready)
        self._refuse_unless_open()  # again: accepted before the dispute was recorded, or together
        self._command, self._command_error = command, None
        await workflow.wait_condition(lambda: self._command is None)
        if self._command_error is not None:
            raise self._command_error
        return self._state

    # Plumbing

    def _ref(self) -> GatewayDisputeRef:
        s = self._state
        return GatewayDisputeRef(gateway=s.gateway, gateway_dispute_id=s.gateway_dispute_id)

    async def _fetch(self) -> GatewayDispute:
        return await kit.fetch_dispute(self._ref())

    async def _notify(self, kind: str) -> None:
        """Tell the merchant; a merchant that cannot be reached is recorded, never fatal."""
        s = self._state
        assert s.currency is not None
        try:
            await workflow.execute_activity_method(
                DisputeActivities.notify_merchant_of_dispute,
                MerchantDisputeNotice(
                    type=kind,
                    dispute_id=s.dispute_id,
                    workflow_id=s.workflow_id,
                    payment_id=s.payment_id,
                    gateway=s.gateway,
                    status=s.status,
                    stage=s.stage,
                    amount=s.amount,
                    currency=s.currency,
                    reason=s.reason,
                    due_by=s.due_by,
                ),
                start_to_close_timeout=MERCHANT_TIMEOUT,
                retry_policy=MERCHANT_RETRY,
                summary=f"tell the merchant: {kind}",
            )
        except ActivityError as error:
            self._step("merchant_not_notified", f"{kind}: {kit.cause(error)}")

    def _step(self, step: str, detail: str) -> None:
        s = self._state
        s.history.append(DisputeStep(at=workflow.now(), step=step, status=s.status, detail=detail))
        kit.show(s.status, step, detail)
        self._publish()

    def _publish(self) -> None:
        """The dispute appears next to its payment in the Temporal UI: `PaymentId = "pay_…"`."""
        s = self._state
        updates: list[SearchAttributeUpdate[Any]] = [
            search.DISPUTE_STATUS.value_set(s.status.value),
            search.GATEWAY.value_set(s.gateway.value),
        ]
        if s.payment_id is not None:
            updates.append(search.PAYMENT_ID.value_set(s.payment_id))
        if s.payment_status is not None:
            updates.append(search.PAYMENT_STATUS.value_set(s.payment_status.value))
        if s.currency is not None:
            updates += [
                search.AMOUNT_MINOR.value_set(s.amount),
                search.CURRENCY.value_set(s.currency),
            ]
        workflow.upsert_search_attributes(updates)

    async def _record(
        self,
        step: str,
        status: DisputeStatus,
        detail: str,
        *,
        withdrawn_target: int | None = None,
    ) -> None:
        """Move the dispute to `status` and write the step to the ledger, once."""
        s = self._state
        s.status = status
        self._step(step, detail)
        recorded = await workflow.execute_activity_method(
            LedgerActivities.record_dispute_step,
            DisputeRecord(
                record_key=f"{s.dispute_id}:{workflow.info().run_id}:{len(s.history)}:{step}",
                dispute_id=s.dispute_id,
                step=step,
                status=status,
                stage=s.stage,
                detail=detail,
                due_by=s.due_by,
                evidence=s.evidence,
                submitted=s.submitted,
                deadline_action=s.deadline_action,
                withdrawn_target=withdrawn_target,
            ),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"record {step}",
        )
        s.payment_status, s.amount_withdrawn = recorded.payment_status, recorded.amount_withdrawn
        self._publish()

    def _opened_at(self) -> datetime:
        """When this service recorded the dispute: its first step (every run carries them)."""
        return self._state.history[0].at

    def _describe(self) -> str:
        s = self._state
        amount = format_amount(s.amount, s.currency) if s.currency else "an amount"
        stage = "inquiry" if s.stage is DisputeStage.INQUIRY else f"{s.stage} dispute"
        return f"{s.gateway} {stage} {s.gateway_dispute_id} over {amount} ({s.reason or '?'})"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "no deadline"
