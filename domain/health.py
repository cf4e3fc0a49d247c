"""Gateway health: a circuit breaker per gateway over the failures our own calls observe, an
operator's override, and the downtimes a gateway announces. Pure transitions; db/health.py
applies them under a row lock, so every worker and API replica shares one breaker per gateway."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class BreakerState(StrEnum):
    CLOSED = "closed"
    """Calls go through; failures are counted within a window."""
    OPEN = "open"
    """Too many failures: auto routing avoids the gateway until the open period ends."""
    HALF_OPEN = "half_open"
    """The open period ended: calls are let through as probes; a success closes, a failure
    opens again."""


class Override(StrEnum):
    """What an operator decided, above the breaker: `down` keeps auto routing off the gateway,
    `up` routes to it whatever the breaker says, `auto` lets the breaker decide."""

    AUTO = "auto"
    DOWN = "down"
    UP = "up"


class BreakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    failure_threshold: int = Field(default=5, ge=1)
    """Failures (unavailable errors, timeouts) within the window that open the breaker."""
    window_seconds: int = Field(default=60, ge=1)
    open_seconds: int = Field(default=30, ge=1)
    """How long an open breaker stays open before it half-opens and lets probes through."""


class GatewayHealth(BaseModel):
    """One gateway's breaker and override, as stored (db/health.py)."""

    gateway: str
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    window_started_at: datetime | None = None
    opened_at: datetime | None = None
    last_failure: str | None = None
    override: Override = Override.AUTO
    override_by: str | None = None
    override_reason: str | None = None
    override_at: datetime | None = None


def current_state(health: GatewayHealth, now: datetime, config: BreakerConfig) -> BreakerState:
    """The breaker as it stands now: an open breaker whose period ended is half-open."""
    if (
        health.state is BreakerState.OPEN
        and health.opened_at is not None
        and now - health.opened_at >= timedelta(seconds=config.open_seconds)
    ):
        return BreakerState.HALF_OPEN
    return health.state


def after_failure(
    health: GatewayHealth, now: datetime, config: BreakerConfig, reason: str
) -> GatewayHealth:
    """A call found the gateway unavailable. A probe's failure (half-open) opens the breaker at
    once; in a closed breaker, the threshold-th failure within the window opens it."""
    state = current_state(health, now, config)
    window = timedelta(seconds=config.window_seconds)
    if state is BreakerState.HALF_OPEN:
        return health.model_copy(
            update={"state": BreakerState.OPEN, "opened_at": now, "failures": 0,
                    "window_started_at": None, "last_failure": reason}
        )  # fmt: skip
    if state is BreakerState.OPEN:
        return health.model_copy(update={"last_failure": reason})
    fresh = health.window_started_at is None or now - health.window_started_at >= window
    failures = 1 if fresh else health.failures + 1
    started = now if fresh else health.window_started_at
    if failures >= config.failure_threshold:
        return health.model_copy(
            update={"state": BreakerState.OPEN, "opened_at": now, "failures": 0,
                    "window_started_at": None, "last_failure": reason}
        )  # fmt: skip
    return health.model_copy(
        update={"failures": failures, "window_started_at": started, "last_failure": reason}
    )


def after_success(health: GatewayHealth, now: datetime, config: BreakerConfig) -> GatewayHealth:
    """A call went through: a half-open breaker's probe closes it and the count starts again. An
    open breaker stays open until its period ends (a call that was already under way proves
    little)."""
    if current_state(health, now, config) is BreakerState.OPEN:
        return health
    return health.model_copy(
        update={"state": BreakerState.CLOSED, "failures": 0, "window_started_at": None,
                "opened_at": None}
    )  # fmt: skip


def needs_success_write(health: GatewayHealth) -> bool:
    """Whether a success changes anything stored: a closed breaker with no failures counted
    stays as it is (so a healthy gateway's calls cost a read, not a write)."""
    return health.state is not BreakerState.CLOSED or health.failures > 0


def routable(
    health: GatewayHealth, now: datetime, config: BreakerConfig, announced_down: bool
) -> tuple[bool, str]:
    """Whether auto routing may send a new payment to the gateway now, and why (for the step
    log). An operator's override wins over the breaker and the gateway's own announcements."""
    if health.override is Override.DOWN:
        return False, f"forced down by {health.override_by or 'an operator'}"
    if health.override is Override.UP:
        return True, f"forced up by {health.override_by or 'an operator'}"
    if announced_down:
        return False, "the gateway announced a downtime"
    state = current_state(health, now, config)
    if state is BreakerState.OPEN:
        return False, f"breaker open ({health.last_failure or 'recent failures'})"
    if state is BreakerState.HALF_OPEN:
        return True, "breaker half-open: this payment probes it"
    return True, "healthy"
