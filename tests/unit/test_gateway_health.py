"""The circuit breaker's transitions (domain/health.py): closed → open after the threshold of
failures within the window, half-open when the open period ends, a probe closes or reopens it;
an operator's override wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from api.gateways import OverrideBody
from domain.health import (
    BreakerConfig,
    BreakerState,
    GatewayHealth,
    Override,
    after_failure,
    after_success,
    current_state,
    needs_success_write,
    routable,
)

CONFIG = BreakerConfig(failure_threshold=3, window_seconds=60, open_seconds=30)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def failed(h: GatewayHealth, *seconds: int) -> GatewayHealth:
    for s in seconds:
        h = after_failure(h, T0 + timedelta(seconds=s), CONFIG, "gateway_error: HTTP 500")
    return h


def test_the_threshold_of_failures_within_the_window_opens_the_breaker() -> None:
    h = failed(GatewayHealth(gateway="stripe"), 0, 10)
    assert h.state is BreakerState.CLOSED and h.failures == 2
    h = failed(h, 20)
    assert h.state is BreakerState.OPEN and h.opened_at == T0 + timedelta(seconds=20)
    assert routable(h, T0 + timedelta(seconds=21), CONFIG, False) == (
        False, "breaker open (gateway_error: HTTP 500)"
    )  # fmt: skip


def test_failures_spread_over_more_than_the_window_do_not_open_it() -> None:
    h = failed(GatewayHealth(gateway="stripe"), 0, 10, 70, 80)
    assert h.state is BreakerState.CLOSED and h.failures == 2


def test_an_open_breaker_half_opens_after_its_period_and_a_probe_success_closes_it() -> None:
    h = failed(GatewayHealth(gateway="stripe"), 0, 1, 2)
    assert current_state(h, T0 + timedelta(seconds=31), CONFIG) is BreakerState.OPEN
    later = T0 + timedelta(seconds=32)
    assert current_state(h, later, CONFIG) is BreakerState.HALF_OPEN
    assert routable(h, later, CONFIG, False)[0]
    closed = after_success(h, later, CONFIG)
    assert closed.state is BreakerState.CLOSED and closed.failures == 0
    assert not needs_success_write(closed)


def test_a_probe_failure_reopens_the_breaker_at_once() -> None:
    h = failed(GatewayHealth(gateway="stripe"), 0, 1, 2)
    reopened = failed(h, 40)
    assert reopened.state is BreakerState.OPEN and reopened.opened_at == T0 + timedelta(seconds=40)


def test_a_success_while_open_keeps_it_open_until_its_period_ends() -> None:
    h = failed(GatewayHealth(gateway="stripe"), 0, 1, 2)
    assert after_success(h, T0 + timedelta(seconds=5), CONFIG) == h


def test_an_operator_override_wins_over_the_breaker_and_announced_downtimes() -> None:
    opened = failed(GatewayHealth(gateway="stripe"), 0, 1, 2)
    up = opened.model_copy(update={"override": Override.UP, "override_by": "ops@shop"})
    assert routable(up, T0, CONFIG, True) == (True, "forced up by ops@shop")
    down = GatewayHealth(gateway="stripe", override=Override.DOWN, override_by="ops@shop")
    assert routable(down, T0, CONFIG, False) == (False, "forced down by ops@shop")


def test_an_announced_downtime_keeps_auto_routing_away() -> None:
    assert routable(GatewayHealth(gateway="razorpay"), T0, CONFIG, True) == (
        False, "the gateway announced a downtime"
    )  # fmt: skip


def test_an_override_reason_with_control_characters_is_refused() -> None:
    assert OverrideBody(override=Override.DOWN, reason="card network incident").reason
    for reason in ("nul\x00byte", "new\nline", ""):
        with pytest.raises(pydantic.ValidationError):
            OverrideBody(override=Override.DOWN, reason=reason)
