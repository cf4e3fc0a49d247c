"""Auto routing (domain/routing.py): currency support, amount bounds, preference order and
health pick the gateway; the others that take the payment are the failover order."""

from __future__ import annotations

import pytest

from domain.checkout import Gateway
from domain.routing import DEFAULT_RULES, RULES, Availability, NoGateway, RoutingRule, choose

UP = Availability(True, "healthy")
DOWN = Availability(False, "breaker open (gateway_error)")
BOTH_UP = {Gateway.STRIPE: UP, Gateway.RAZORPAY: UP}


def test_the_first_gateway_in_preference_order_takes_a_payment_both_settle() -> None:
    gateway, routing = choose(2500, "INR", DEFAULT_RULES, BOTH_UP)
    assert gateway is Gateway.STRIPE
    assert routing.fallbacks == [Gateway.RAZORPAY]
    assert routing.reason == "auto: stripe is the first healthy gateway for INR"


def test_currency_rules_send_each_currency_to_its_gateway() -> None:
    rules = RULES.validate_python(
        [{"gateway": "razorpay", "currencies": ["INR"]}, {"gateway": "stripe"}]
    )
    assert choose(2500, "INR", rules, BOTH_UP)[0] is Gateway.RAZORPAY
    gateway, routing = choose(2500, "USD", rules, BOTH_UP)
    assert gateway is Gateway.STRIPE and routing.fallbacks == []  # razorpay takes only INR


def test_a_currency_only_one_gateway_settles_has_no_failover() -> None:
    gateway, routing = choose(2500, "VND", DEFAULT_RULES, BOTH_UP)
    assert gateway is Gateway.STRIPE and routing.fallbacks == []


def test_amount_bounds_move_large_payments_to_another_gateway() -> None:
    rules = [
        RoutingRule(gateway=Gateway.STRIPE, max_amount={"INR": 100_000}),
        RoutingRule(gateway=Gateway.RAZORPAY, min_amount={"INR": 100}),
    ]
    assert choose(100_000, "INR", rules, BOTH_UP)[0] is Gateway.STRIPE
    gateway, routing = choose(100_001, "INR", rules, BOTH_UP)
    assert gateway is Gateway.RAZORPAY and routing.fallbacks == []
    with pytest.raises(NoGateway) as refused:
        choose(99, "JPY", [RoutingRule(gateway=Gateway.RAZORPAY, min_amount={"JPY": 100})], {})
    assert refused.value.code == "unroutable"


def test_an_unhealthy_gateway_is_skipped_and_kept_last_for_failover() -> None:
    health = {Gateway.STRIPE: DOWN, Gateway.RAZORPAY: UP}
    gateway, routing = choose(2500, "INR", DEFAULT_RULES, health)
    assert gateway is Gateway.RAZORPAY and routing.fallbacks == [Gateway.STRIPE]
    assert "skipped stripe: breaker open" in routing.reason


def test_with_every_gateway_unhealthy_the_first_is_tried_all_the_same() -> None:
    gateway, routing = choose(
        2500, "INR", DEFAULT_RULES, {Gateway.STRIPE: DOWN, Gateway.RAZORPAY: DOWN}
    )
    assert gateway is Gateway.STRIPE and routing.fallbacks == [Gateway.RAZORPAY]
    assert routing.reason.startswith("auto: no healthy gateway for INR; trying stripe")


def test_a_gateway_forced_down_is_never_chosen_nor_failed_over_to() -> None:
    forced = Availability(False, "forced down by ops@shop")
    gateway, routing = choose(2500, "INR", DEFAULT_RULES, {Gateway.STRIPE: forced})
    assert gateway is Gateway.RAZORPAY and routing.fallbacks == []
    with pytest.raises(NoGateway) as refused:
        choose(2500, "VND", DEFAULT_RULES, {Gateway.STRIPE: forced})
    assert refused.value.code == "forced_down"
