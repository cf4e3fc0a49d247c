"""Auto routing: which gateway takes a new payment, by the merchant's rules (currency support,
amount bounds, preference order) and each gateway's health. Pure: the API reads health and the
rules, this decides, and the checkout saga carries the decision (and the gateways it may fail
over to) in its input."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from domain.checkout import Gateway, Routing
from domain.money import RAZORPAY_CURRENCIES, STRIPE_CURRENCIES

SUPPORTED_CURRENCIES: dict[Gateway, frozenset[str]] = {
    Gateway.STRIPE: STRIPE_CURRENCIES,
    Gateway.RAZORPAY: RAZORPAY_CURRENCIES,
}


class RoutingRule(BaseModel):
    """One gateway the merchant routes to; the rules' order is the preference order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gateway: Gateway
    currencies: frozenset[str] | None = None
    """The currencies sent to it (default: every currency it settles)."""
    min_amount: dict[str, int] = Field(default_factory=dict)
    """Per currency, in minor units: smaller payments go elsewhere."""
    max_amount: dict[str, int] = Field(default_factory=dict)
    """Per currency, in minor units: larger payments go elsewhere."""

    def takes(self, amount: int, currency: str) -> bool:
        if currency not in SUPPORTED_CURRENCIES[self.gateway]:
            return False
        if self.currencies is not None and currency not in self.currencies:
            return False
        low, high = self.min_amount.get(currency), self.max_amount.get(currency)
        return (low is None or amount >= low) and (high is None or amount <= high)


RULES = TypeAdapter(list[RoutingRule])
DEFAULT_RULES = [RoutingRule(gateway=Gateway.STRIPE), RoutingRule(gateway=Gateway.RAZORPAY)]


@dataclass(frozen=True)
class Availability:
    """Whether auto routing may use a gateway now, and why."""

    routable: bool
    why: str


class NoGateway(Exception):
    """No gateway may take the payment: none takes its currency and amount (`unroutable`), or
    every one that does is forced down by an operator (`forced_down`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def choose(
    amount: int,
    currency: str,
    rules: list[RoutingRule],
    health: dict[Gateway, Availability],
) -> tuple[Gateway, Routing]:
    """The first routable gateway in preference order that takes the payment, and the others that
    take it (routable first) as the saga's failover order. When every one is unhealthy the first
    not forced down is tried all the same: an outage delays a checkout, it does not refuse it."""
    eligible = [r.gateway for r in rules if r.takes(amount, currency)]
    if not eligible:
        raise NoGateway("unroutable", f"no gateway is configured to take {amount} {currency}")
    unknown = Availability(True, "healthy")
    healthy = [g for g in eligible if health.get(g, unknown).routable]
    forced = [g for g in eligible if health.get(g, unknown).why.startswith("forced down")]
    usable = [g for g in eligible if g not in forced]
    if not usable:
        raise NoGateway("forced_down", f"every gateway for {currency} is forced down")
    order = healthy + [g for g in usable if g not in healthy]
    chosen = order[0]
    skipped = [f"{g}: {health[g].why}" for g in eligible[: eligible.index(chosen)] if g in health]
    if chosen in healthy:
        reason = f"auto: {chosen} is the first healthy gateway for {currency}"
    else:
        reason = f"auto: no healthy gateway for {currency}; trying {chosen}"
    if skipped:
        reason += f" (skipped {'; '.join(skipped)})"
    return chosen, Routing(reason=reason, fallbacks=order[1:])
