"""How the sandbox behaves beyond storing objects: faults armed by tests, writes serialized per
gateway object (with commits that land after the client gave up), and the settings of the
Razorpay account. Each is switchable over HTTP; ``Behaviour.reset`` restores the defaults,
which are the real gateways' defaults. docs/sandbox.md lists every behaviour and its source.
"""

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from sandbox.state import Gateway

T = TypeVar("T")

FaultKind = Literal[
    "error_500", "applied_then_500", "timeout", "applied_but_lost", "slow_commit", "rate_limited"
]
# Faults that apply a write the client is told failed; a read has nothing to apply.
WRITE_ONLY_FAULTS: frozenset[str] = frozenset({"slow_commit", "applied_then_500"})
RefundMode = Literal["instant", "pending"]


@dataclass
class Fault:
    """One injected failure waiting for the next ``times`` calls of an operation."""

    gateway: Gateway
    operation: str
    kind: FaultKind
    times: int
    delay_seconds: float


class Faults:
    """The armed faults, consumed by matching calls in the order they were added."""

    def __init__(self) -> None:
        self._armed: list[Fault] = []
        self.outages: dict[Gateway, Fault] = {}
        """A gateway taken down: every call to it fails so until it is brought back."""

    @property
    def armed(self) -> list[Fault]:
        """The faults still waiting for their calls."""
        return list(self._armed)

    def add(self, fault: Fault) -> None:
        """Arm a fault."""
        self._armed.append(fault)

    def clear(self) -> None:
        """Disarm every fault and end every outage."""
        self._armed.clear()
        self.outages.clear()

    def take(self, gateway: Gateway, operation: str) -> Fault | None:
        """The fault that fires for this call, if any, counting it as used once."""
        if gateway in self.outages:
            return self.outages[gateway]
        for fault in self._armed:
            if fault.gateway == gateway and fault.operation == operation:
                fault.times -= 1
                if fault.times <= 0:
                    self._armed.remove(fault)
                return fault
        return None


class Writes:
    """Writes to one gateway object (a payment, a dispute) run one at a time, in arrival order.

    Both gateways apply a write to an object before the next one sees it, so a retry that
    arrives while an earlier write is still being applied waits for it and then meets the new
    state (Razorpay: "This payment has already been captured"). A ``slow_commit`` fault keeps
    the object's turn while the client already has its error and applies the write
    ``delay_seconds`` later; reads do not wait and meanwhile show the old state.
    """

    def __init__(self) -> None:
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}
        self._late: set[asyncio.Task[None]] = set()

    async def run(
        self,
        subject: str | None,
        fault: Fault | None,
        apply: Callable[[], T],
        done: Callable[[], None],
    ) -> T | None:
        """Apply one call in ``subject``'s turn (no turn for reads and creations) as ``fault``
        says; ``done`` runs once the call is applied. None: the client got no answer and the
        write lands later (``slow_commit``)."""
        try:
            await self._enter(subject)
        except BaseException:
            done()
            raise
        if fault is not None and fault.kind == "slow_commit":
            self._spawn(self._commit_late(subject, fault.delay_seconds, apply, done))
            return None
        try:
            if fault is not None and fault.kind == "timeout":
                await asyncio.sleep(fault.delay_seconds)
            return apply()
        finally:
            self._leave(subject)
            done()

    async def _commit_late(
        self, subject: str | None, delay: float, apply: Callable[[], T], done: Callable[[], None]
    ) -> None:
        try:
            await asyncio.sleep(delay)
            apply()
        finally:
            self._leave(subject)
            done()

    async def _enter(self, subject: str | None) -> None:
        if subject is None:
            return
        lock, users = self._turns.get(subject, (asyncio.Lock(), 0))
        self._turns[subject] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(subject)
            raise

    def _leave(self, subject: str | None) -> None:
        if subject is not None:
            self._turns[subject][0].release()
            self._forget(subject)

    def _forget(self, subject: str) -> None:
        lock, users = self._turns[subject]
        if users == 1:
            del self._turns[subject]
        else:
            self._turns[subject] = (lock, users - 1)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def close(self) -> None:
        """Abandon writes still waiting to land (the sandbox is shutting down)."""
        for task in list(self._late):
            task.cancel()
        await asyncio.gather(*self._late, return_exceptions=True)


class RazorpayAccount(BaseModel):
    """The Razorpay account's capture settings (Dashboard, "Capture and Refund Settings").

    https://razorpay.com/docs/payments/payments/capture-settings: automatic capture is "the
    default setting for all customers"; the auto-capture timeout is 12 minutes to 3 days
    (default 3 days), a payment authorized later stays authorized; "For Direct Settlement
    merchants, payments will be auto-captured irrespective of the configuration". An order's own
    ``payment.capture`` setting takes precedence over the account's
    (https://razorpay.com/docs/payments/payments/capture-settings/api).
    """

    capture: Literal["automatic", "manual"] = "automatic"
    automatic_expiry_minutes: int = Field(default=3 * 24 * 60, ge=12, le=3 * 24 * 60)
    direct_settlement: bool = False


class Behaviour:
    """Everything a test may switch, with the gateways' defaults; one ``reset`` restores them."""

    def __init__(self, refund_mode: RefundMode) -> None:
        self._initial_refund_mode: RefundMode = refund_mode
        self.faults = Faults()
        self.writes = Writes()
        self.refund_mode: RefundMode = refund_mode
        self.razorpay_account = RazorpayAccount()

    def reset(self) -> None:
        """Disarm every fault and restore every setting. Writes already accepted still land."""
        self.faults.clear()
        self.refund_mode = self._initial_refund_mode
        self.razorpay_account = RazorpayAccount()
