"""The reconciler: a backstop, run by a Temporal Schedule, for lost webhooks and unknown outcomes.

It asks the gateway about every payment and refund that may have drifted and, where the gateway
disagrees with the ledger, signals the owning saga to look again (one writer per payment), or
flags the object for an operator when that saga has closed; money the gateway took for a checkout
that had ended without it is given back by a refund saga it starts. It never writes money state."""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.reconcile import ReconcileActivities
    from domain import names
    from domain.checkout import GatewayPaymentRef, PaymentEvent, PaymentEventKind
    from domain.reconcile import (
        Candidate,
        CheckResult,
        Finding,
        Flag,
        ObjectKind,
        ReconcileReport,
        ReconcileRequest,
    )
    from domain.refund import RefundEvent
    from workflows import kit
    from workflows.policies import CHECK_RETRY, GATEWAY_TIMEOUT, LEDGER_TIMEOUT, PERSISTENT_RETRY


# Pinned: a run lasts minutes; the next scheduled run starts on the current build.
@workflow.defn(name=names.RECONCILE_WORKFLOW, versioning_behavior=VersioningBehavior.PINNED)
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._report: ReconcileReport | None = None

    @workflow.run
    async def run(self, request: ReconcileRequest) -> ReconcileReport:
        report = ReconcileReport(
            run_id=workflow.info().workflow_id,
            trigger=request.trigger,
            started_at=workflow.now(),
        )
        self._report = report
        workflow.set_current_details("Finding payments and refunds that may have drifted")
        candidates = await workflow.execute_activity_method(
            ReconcileActivities.find_reconciliation_candidates,
            request,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary="find stale payments and refunds",
        )
        slots = asyncio.Semaphore(request.max_concurrency)

        async def reconcile(candidate: Candidate) -> None:
            async with slots:
                finding = await self._reconcile(report, candidate)
            report.checked += 1
            if finding is not Finding.AGREES:
                report.findings[candidate.object_id] = finding.value
            report.changed += finding in (Finding.SIGNALED, Finding.GIVEN_BACK)
            report.flagged += finding is Finding.FLAGGED
            report.unreachable += finding is Finding.UNREACHABLE
            self._show(report, len(candidates))

        self._show(report, len(candidates))
        await asyncio.gather(*(reconcile(c) for c in candidates))
        report.finished_at = workflow.now()
        await workflow.execute_activity_method(
            ReconcileActivities.record_reconciliation_run,
            report,
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary="record the run's counts",
        )
        return report

    async def _reconcile(self, report: ReconcileReport, candidate: Candidate) -> Finding:
        try:
            checked = await workflow.execute_activity_method(
                ReconcileActivities.check_against_gateway,
                candidate,
                start_to_close_timeout=GATEWAY_TIMEOUT,
                retry_policy=CHECK_RETRY,
                summary=f"ask {candidate.gateway} about {candidate.kind} {candidate.object_id}",
            )
        except ActivityError:
            return Finding.UNREACHABLE
        if checked.disagreement is None:
            return Finding.AGREES
        if checked.late_payment is not None:
            await self._give_back(report, candidate, checked.late_payment)
            return Finding.GIVEN_BACK
        if not candidate.closed and await self._signal_owner(report, checked):
            return Finding.SIGNALED
        await workflow.execute_activity_method(
            ReconcileActivities.flag_disagreement,
            Flag(
                run_id=report.run_id,
                candidate=candidate,
                gateway_status=checked.gateway_status,
                detail=checked.disagreement,
            ),
            start_to_close_timeout=LEDGER_TIMEOUT,
            retry_policy=PERSISTENT_RETRY,
            summary=f"flag {candidate.kind} {candidate.object_id} for an operator",
        )
        return Finding.FLAGGED

    async def _give_back(
        self, report: ReconcileReport, candidate: Candidate, held_by: GatewayPaymentRef
    ) -> None:
        """Start the refund of a late payment (the webhook's relay may have started it already:
        one workflow per gateway payment); it outlives this run."""
        await kit.give_back_late_payment(
            candidate.payment_id,
            held_by,
            f"paid after the checkout ended {candidate.ledger_status};"
            f" found by reconciliation run {report.run_id}",
        )

    async def _signal_owner(self, report: ReconcileReport, checked: CheckResult) -> bool:
        """Hand what the gateway said to the saga that owns the object; False if it has closed."""
        c = checked.candidate
        event_id = f"reconcile:{report.run_id}:{c.object_id}"
        owner = workflow.get_external_workflow_handle(c.workflow_id)
        try:
            if c.kind is ObjectKind.PAYMENT:
                assert c.payment_ref is not None
                await owner.signal(
                    names.PAYMENT_EVENT,
                    PaymentEvent(
                        event_id=event_id,
                        kind=PaymentEventKind.RECONCILE,
                        gateway_payment_id=c.payment_ref.gateway_payment_id,
                        gateway_charge_id=c.payment_ref.gateway_charge_id,
                    ),
                )
            else:
                assert c.gateway_refund_id is not None
                await owner.signal(
                    names.REFUND_EVENT,
                    RefundEvent(
                        event_id=event_id,
                        event_type="reconcile",
                        gateway_refund_id=c.gateway_refund_id,
                        gateway_status=checked.gateway_status or "unknown",
                    ),
                )
        except FailureError:
            return False  # the workflow is not running: an operator decides
        return True

    def _show(self, report: ReconcileReport, total: int) -> None:
        workflow.set_current_details(
            f"Checked {report.checked} of {total}: {report.changed} sent back to their saga,"
            f" {report.flagged} flagged for operators, {report.unreachable} gateway unreachable"
        )

    @workflow.query(name=names.RECONCILE_REPORT)
    def report(self) -> ReconcileReport | None:
        return self._report
