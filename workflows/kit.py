"""The saga kit: what every saga does the same way, kept apart from the business stories — the
signal inbox with deduplication, the current details an operator reads, the gateway look-ups,
continue-as-new when due, and the typing of named updates."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.disputes import DisputeActivities
    from activities.gateways.base import UNAVAILABLE_KINDS
    from activities.payments import GatewayActivities
    from domain import names
    from domain.checkout import GatewayPayment, GatewayPaymentRef
    from domain.dispute import GatewayDispute, GatewayDisputeRef
    from domain.refund import GatewayRefund, GatewayRefundRef, late_payment_refund
    from workflows import search_attributes as search
    from workflows.policies import GATEWAY_RETRY, GATEWAY_TIMEOUT, LIVE, PERSISTENT_RETRY

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

# A run of a long saga looks at the gateway at most this often before it continues as new, so
# that a refund or dispute pending for weeks keeps a short history.
MAX_POLLS_PER_RUN = 200


def update(
    name: str,
) -> Callable[[Callable[P, Awaitable[R]]], workflow.UpdateMethodMultiParam[P, R]]:
    """`@workflow.update(name=...)` for an async handler, typed as the SDK types the bare form
    (its named overload leaves the coroutine in the return type)."""
    return cast(
        Callable[[Callable[P, Awaitable[R]]], workflow.UpdateMethodMultiParam[P, R]],
        workflow.update(name=name),
    )


class GatewayEvent(Protocol):
    @property
    def event_id(self) -> str: ...


E = TypeVar("E", bound=GatewayEvent)


class SignalInbox(Generic[E]):
    """Events a signal handler queued for the run loop (the one writer), each event id once.

    `seen` is the list of ids already taken; a saga that continues as new carries it in its state,
    so a webhook redelivered after the continue-as-new is still dropped."""

    def __init__(self, seen: list[str] | None = None) -> None:
        self._queue: deque[E] = deque()
        self._seen = seen if seen is not None else []

    def receive(self, event: E) -> None:
        if event.event_id in self._seen:
            return
        self._seen.append(event.event_id)
        self._queue.append(event)

    def __bool__(self) -> bool:
        return bool(self._queue)

    def pop(self) -> E:
        return self._queue.popleft()

    def clear(self) -> None:
        """Forget what is queued: a fetch from the gateway has just read what it would say."""
        self._queue.clear()

    def any(self, predicate: Callable[[E], bool]) -> bool:
        return any(predicate(e) for e in self._queue)

    def drop(self, predicate: Callable[[E], bool]) -> None:
        self._queue = deque(e for e in self._queue if not predicate(e))


def show(status: str, step: str, detail: str) -> None:
    """The current details an operator reads in the Temporal UI after each step."""
    workflow.set_current_details(f"**{status}** after `{step}`: {detail}")


# Failures after which a gateway call may or may not have taken effect: retrying (with the same
# idempotency key) or looking the object up is right; giving up is not (activities/gateways/base).


def gateway_unavailable(error: ActivityError) -> bool:
    """The gateway did not say no: it could not be reached, failed, or asked us to slow down."""
    inner = error.cause
    if isinstance(inner, ActivityTimeoutError):
        return True
    return isinstance(inner, ApplicationError) and inner.type in UNAVAILABLE_KINDS


def reraise_cancellation(error: ActivityError) -> None:
    """An activity cut short because the workflow is being canceled fails with a cancellation,
    which is no failure of the step: it goes on as the workflow's cancellation."""
    if isinstance(error.cause, CancelledError):
        raise asyncio.CancelledError() from error


def refused_as(error: ActivityError, *kinds: str) -> bool:
    inner = error.cause
    return isinstance(inner, ApplicationError) and inner.type in kinds


async def shielded(work: Coroutine[Any, Any, T]) -> T:
    """Run a compensation to its end even when the workflow is canceled (again) meanwhile: a
    refund or a void half-done is money in flight."""
    task = asyncio.ensure_future(work)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()


def cause(error: BaseException) -> str:
    """The innermost failure's type and message, for last_error and the operator."""
    inner = error.cause if isinstance(error, ActivityError) and error.cause else error
    kind = inner.type if isinstance(inner, ApplicationError) and inner.type else ""
    return f"{kind}: {inner.message if isinstance(inner, ApplicationError) else inner}".strip(": ")


def continue_as_new_due(polls_this_run: int) -> bool:
    return workflow.info().is_continue_as_new_suggested() or polls_this_run >= MAX_POLLS_PER_RUN


# Gateway look-ups: what the gateway holds now, before a saga moves money on a hint.


async def fetch_payment(
    ref: GatewayPaymentRef,
    *,
    persistent: bool = False,
    priority: Priority = LIVE,
    retry: RetryPolicy | None = None,
) -> GatewayPayment:
    return await workflow.execute_activity_method(
        GatewayActivities.fetch_gateway_payment,
        ref,
        start_to_close_timeout=GATEWAY_TIMEOUT,
        retry_policy=retry or (PERSISTENT_RETRY if persistent else GATEWAY_RETRY),
        summary="look the payment up at the gateway",
        priority=priority,
    )


async def give_back_late_payment(payment_id: str, held_by: GatewayPaymentRef, note: str) -> None:
    """Start the refund of money a gateway took for a payment that had ended without it; it
    outlives the caller. One per gateway payment: the webhook's relay (or another saga that found
    it) may have started it already."""
    charge = held_by.gateway_charge_id or held_by.gateway_payment_id
    try:
        await workflow.start_child_workflow(
            names.REFUND_WORKFLOW,
            late_payment_refund(payment_id, held_by, note),
            id=names.late_payment_refund_workflow_id(payment_id, charge),
            parent_close_policy=ParentClosePolicy.ABANDON,
            search_attributes=search.refund_at_start(payment_id),
            static_summary=f"Late payment {charge} of {payment_id}: given back",
        )
    except WorkflowAlreadyStartedError:
        pass  # found first by someone else


async def fetch_refund(ref: GatewayRefundRef) -> GatewayRefund:
    return await workflow.execute_activity_method(
        GatewayActivities.fetch_gateway_refund,
        ref,
        start_to_close_timeout=GATEWAY_TIMEOUT,
        retry_policy=PERSISTENT_RETRY,
        summary="look the refund up at the gateway",
    )


async def fetch_dispute(ref: GatewayDisputeRef) -> GatewayDispute:
    return await workflow.execute_activity_method(
        DisputeActivities.fetch_gateway_dispute,
        ref,
        start_to_close_timeout=GATEWAY_TIMEOUT,
        retry_policy=PERSISTENT_RETRY,
        summary="look the dispute up at the gateway",
    )
