"""Payout saga, one per checkout with splits: after the capture, the sellers' shares are held
(escrow) until the release date — a Temporal timer, days or months long — then transferred to
the sellers' gateway accounts. Refunds and lost disputes reverse the shares (and the platform's
fee) in proportion, before or after the release, never more than they hold. An operator may
release early or hold with a reason.

Each run starts from the ledger (`open_payout`), so a payout that had finished and is told of a
later refund (signal-with-start) simply runs again."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.marketplace import PayoutActivities
    from domain import names
    from domain.marketplace import (
        Clawback,
        HoldPayout,
        Payout,
        PayoutNudge,
        PayoutState,
        ReleasePayout,
        ReleasePayoutEarly,
        reversal_for,
    )
    from workflows import kit
    from workflows.policies import GATEWAY_TIMEOUT, LEDGER_TIMEOUT, PERSISTENT_RETRY

# Auto-upgrade: a payout may wait months for its release date, longer than a build should run;
# it moves to the current build, so a change must keep its histories replaying
# (docs/operations.md "Changing workflow code safely").

RELEASE_DATE_CALLER = "release-date"


@workflow.defn(name=names.PAYOUT_WORKFLOW, versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class PayoutWorkflow:
    @workflow.init
    def __init__(self, payment_id: str) -> None:
        self._payment_id = payment_id
        self._payout: Payout | None = None
        self._look_again = True  # every run first looks at what was taken back meanwhile
        self._release_early: ReleasePayoutEarly | None = None
        self._hold: HoldPayout | None = None

    # The story

    @workflow.run
    async def run(self, payment_id: str) -> Payout:
        payout = await self._open()
        while True:
            if self._look_again:
                self._look_again = False
                await self._take_back_what_customers_got_back()
            if self._hold is not None:
                await self._hold_payout(self._hold)
                self._hold = None
            if self._release_early is not None:
                await self._release(self._release_early.caller or "operator")
                self._release_early = None
            payout = self._current
            if payout.state is PayoutState.HOLDING and self._due():
                await self._release(RELEASE_DATE_CALLER)
            if self._current.released and not self._pending():
                break
            await self._wait_for_something()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._current

    async def _open(self) -> Payout:
        self._payout = await workflow.execute_activity_method(
            PayoutActivities.open_payout, self._payment_id,
            start_to_close_timeout=LEDGER_TIMEOUT, retry_policy=PERSISTENT_RETRY,
            summary="Open the payout: split the capture into held shares",
        )  # fmt: skip
        return self._payout

    async def _take_back_what_customers_got_back(self) -> None:
        """Refunds and lost disputes: the shares give back their proportion of the new part."""
        clawback: Clawback = await workflow.execute_activity_method(
            PayoutActivities.read_clawback, self._payment_id,
            start_to_close_timeout=LEDGER_TIMEOUT, retry_policy=PERSISTENT_RETRY,
            summary="Read refunds and lost disputes",
        )  # fmt: skip
        reversal = reversal_for(self._current, clawback.total)
        if reversal is None:
            return
        self._payout = await workflow.execute_activity_method(
            PayoutActivities.reverse_payout, reversal,
            start_to_close_timeout=GATEWAY_TIMEOUT * 4, retry_policy=PERSISTENT_RETRY,
            summary=f"Reverse shares of {reversal.clawed_back_to - self._current.clawed_back}",
        )  # fmt: skip

    async def _release(self, caller: str) -> None:
        """A gateway that refuses a transfer for good (an account not onboarded) leaves the
        payout held with the refusal as its reason, for an operator to release once fixed."""
        if self._current.released:
            return
        try:
            self._payout = await workflow.execute_activity_method(
                PayoutActivities.release_payout,
                ReleasePayout(payment_id=self._payment_id, caller=caller),
                start_to_close_timeout=GATEWAY_TIMEOUT * 4, retry_policy=PERSISTENT_RETRY,
                summary=f"Release the payout ({caller})",
            )  # fmt: skip
        except ActivityError as error:
            cause = error.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
            refused = HoldPayout(reason=f"transfer refused: {reason}"[:500], caller="gateway")
            await self._hold_payout(refused)

    async def _hold_payout(self, hold: HoldPayout) -> None:
        await workflow.execute_activity_method(
            PayoutActivities.hold_payout, (self._payment_id, hold.reason, hold.caller),
            start_to_close_timeout=LEDGER_TIMEOUT, retry_policy=PERSISTENT_RETRY,
            summary=f"Hold the payout: {hold.reason}",
        )  # fmt: skip
        self._payout = self._current.model_copy(
            update={"state": PayoutState.ON_HOLD, "hold_reason": hold.reason}
        )

    # Handlers

    @workflow.signal(name=names.PAYOUT_NUDGE)
    def nudge(self, nudge: PayoutNudge) -> None:
        self._look_again = True

    @kit.update(names.RELEASE_PAYOUT)
    async def release_early(self, request: ReleasePayoutEarly) -> Payout:
        self._release_early = request
        await workflow.wait_condition(lambda: self._release_early is None)
        return self._current

    @release_early.validator
    def _validate_release(self, request: ReleasePayoutEarly) -> None:
        if self._payout is not None and self._payout.released:
            raise ApplicationError("the payout has been released", type="already_released")

    @kit.update(names.HOLD_PAYOUT)
    async def hold(self, request: HoldPayout) -> Payout:
        self._hold = request
        await workflow.wait_condition(lambda: self._hold is None)
        return self._current

    @hold.validator
    def _validate_hold(self, request: HoldPayout) -> None:
        if self._payout is not None and self._payout.released:
            raise ApplicationError("the payout has been released", type="already_released")

    @workflow.query(name=names.STATE)
    def state(self) -> Payout | None:
        return self._payout

    # Plumbing

    @property
    def _current(self) -> Payout:
        assert self._payout is not None
        return self._payout

    def _pending(self) -> bool:
        return self._look_again or self._hold is not None or self._release_early is not None

    def _due(self) -> bool:
        release_at = self._current.release_at
        return release_at is None or workflow.now() >= release_at

    async def _wait_for_something(self) -> None:
        release_at = self._current.release_at
        timeout: timedelta | None = None
        if self._current.state is PayoutState.HOLDING and release_at is not None:
            timeout = max(release_at - workflow.now(), timedelta(seconds=1))
        try:
            await workflow.wait_condition(
                self._pending, timeout=timeout, timeout_summary="until the release date"
            )
        except TimeoutError:
            pass  # the release date: the loop releases
