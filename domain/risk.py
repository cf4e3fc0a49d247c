"""Risk screening contract and rules: what an assessment looks at, the rules that score it, and the
decision (allow, review, block). Pure: the counts over recent history come from the ledger
(`db/risk.py`), the rules and thresholds from its `risk_rules` table, read on every assessment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from domain.checkout import CardSignals, Model, NewCheckout


class RiskDecision(StrEnum):
    ALLOW = "allow"
    REVIEW = "review"
    BLOCK = "block"


class RiskStage(StrEnum):
    CREATE = "create"
    """Before the gateway payment is created: the request and recent history."""
    AUTHORIZATION = "authorization"
    """When the customer paid: the card's fingerprint and country, the gateway's risk signals."""


class ReviewOutcome(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT_APPROVED = "timed_out_approved"
    TIMED_OUT_REJECTED = "timed_out_rejected"


class RuleName(StrEnum):
    VELOCITY_CUSTOMER = "velocity_customer"
    VELOCITY_EMAIL = "velocity_email"
    VELOCITY_IP = "velocity_ip"
    VELOCITY_CARD = "velocity_card"
    AMOUNT = "amount"
    FIRST_PURCHASE = "first_purchase"
    COUNTRY_MISMATCH = "country_mismatch"
    DISTINCT_CARDS = "distinct_cards"
    GATEWAY_RISK = "gateway_risk"


VELOCITY_RULES = frozenset(
    {
        RuleName.VELOCITY_CUSTOMER,
        RuleName.VELOCITY_EMAIL,
        RuleName.VELOCITY_IP,
        RuleName.VELOCITY_CARD,
    }
)

# The reason a customer may be told: what kind of thing went wrong, never which signal (an IP, a
# card) nor a threshold, so that the screening cannot be probed.
REASONS: dict[RuleName, str] = {
    RuleName.VELOCITY_CUSTOMER: "too_many_attempts",
    RuleName.VELOCITY_EMAIL: "too_many_attempts",
    RuleName.VELOCITY_IP: "too_many_attempts",
    RuleName.VELOCITY_CARD: "too_many_attempts",
    RuleName.AMOUNT: "amount_not_accepted",
    RuleName.FIRST_PURCHASE: "amount_not_accepted",
    RuleName.COUNTRY_MISMATCH: "card_not_accepted",
    RuleName.DISTINCT_CARDS: "card_not_accepted",
    RuleName.GATEWAY_RISK: "card_not_accepted",
}


class RuleConfig(BaseModel):
    """One row of `risk_rules`. `limit`/`window_seconds` for the velocity and distinct-card rules,
    `thresholds` (minor units per currency; a currency not listed is not checked) for the amount
    rules, `levels` (the gateway's risk levels that hit) for the gateway rule."""

    model_config = ConfigDict(extra="forbid")

    rule: RuleName
    enabled: bool = True
    score: int = Field(ge=0)
    limit: int | None = Field(default=None, ge=1)
    window_seconds: int | None = Field(default=None, ge=1)
    thresholds: dict[str, int] = Field(default_factory=dict)
    levels: list[str] = Field(default_factory=list)


class RiskConfig(Model):
    """The rules and the thresholds that turn their total score into a decision."""

    review_score: int = 50
    block_score: int = 100
    review_window_seconds: int = 3600
    """How long a review at checkout creation may wait for an operator."""
    review_default: ReviewOutcome = ReviewOutcome.REJECTED
    """What a review not decided in time becomes: reject (fail or void) or approve (go on)."""
    rules: list[RuleConfig] = Field(default_factory=list)

    def rule(self, name: RuleName) -> RuleConfig | None:
        return next((r for r in self.rules if r.rule is name and r.enabled), None)


class RiskFacts(Model):
    """What the rules look at: the checkout and, from the ledger, its recent history."""

    stage: RiskStage
    amount: int
    currency: str
    customer_country: str | None = None
    card: CardSignals | None = None
    recent: dict[RuleName, int] = Field(default_factory=dict)
    """Per velocity rule, earlier checkouts sharing the key within the rule's window; for
    `distinct_cards`, the distinct cards of the customer in the window, this one included."""
    first_purchase: bool = False
    """The customer has no captured checkout yet."""


class RuleHit(Model):
    rule: RuleName
    score: int
    reason: str
    """Safe to show the customer."""
    detail: str
    """For the operator."""


class Assessment(Model):
    decision: RiskDecision
    score: int
    hits: list[RuleHit] = Field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """The customer-safe reason of the rule that weighed most."""
        top = max(self.hits, key=lambda h: h.score, default=None)
        return top.reason if top else None


# Activity contracts


class AssessCheckout(Model):
    stage: RiskStage
    checkout_id: str
    workflow_id: str
    customer_id: str
    customer_email: str | None = None
    client_ip: str | None = None
    customer_country: str | None = None
    amount: int
    currency: str
    gateway: str
    gateway_payment_id: str | None = None
    gateway_charge_id: str | None = None
    """At authorization: the payment whose card signals the gateway is asked for."""
    review_by: datetime | None = None
    """The latest a review may end (before the authorization deadline or expiry)."""
    new_checkout: NewCheckout | None = None
    """At creation: the checkout's payment row, written with the assessment (so that a blocked or
    reviewed checkout is in the ledger before any gateway call)."""


class RiskVerdict(Model):
    """An assessment as stored (once per checkout and stage), with the review settings it was
    made under."""

    assessment_id: int
    assessment: Assessment
    review_deadline: datetime | None = None
    """When the decision is review: when the configured default applies."""
    review_default: ReviewOutcome = ReviewOutcome.REJECTED


class ReviewDecision(Model):
    """An operator's decision on a review (the update's argument); the API sets the caller."""

    outcome: ReviewOutcome
    reviewer: str = ""
    note: str = Field(default="", max_length=500)


class RecordReview(Model):
    assessment_id: int
    status: ReviewStatus
    reviewer: str | None = None
    note: str = ""


class ReviewItem(Model):
    """One entry of the review queue."""

    assessment_id: int
    checkout_id: str
    workflow_id: str
    stage: RiskStage
    customer_id: str
    amount: int
    currency: str
    score: int
    hits: list[RuleHit]
    status: ReviewStatus
    review_deadline: datetime | None
    created_at: datetime
    reviewer: str | None = None


# The rules

Rule = Callable[[RuleConfig, RiskFacts], str | None]
"""A rule's operator-facing detail when it hits, else None."""


def _velocity(config: RuleConfig, facts: RiskFacts) -> str | None:
    earlier = facts.recent.get(config.rule)
    if earlier is None or config.limit is None:
        return None  # the key is unknown (no email, IP or card) or the rule has no limit
    if earlier + 1 <= config.limit:
        return None
    return f"{earlier + 1} checkouts within {config.window_seconds}s, limit {config.limit}"


def _amount(config: RuleConfig, facts: RiskFacts) -> str | None:
    threshold = config.thresholds.get(facts.currency)
    if threshold is None or facts.amount <= threshold:
        return None
    return f"{facts.amount} {facts.currency} over {threshold}"


def _first_purchase(config: RuleConfig, facts: RiskFacts) -> str | None:
    return _amount(config, facts) if facts.first_purchase else None


def _country_mismatch(config: RuleConfig, facts: RiskFacts) -> str | None:
    card = facts.card.country if facts.card else None
    if card is None or facts.customer_country is None:
        return None
    if card.upper() == facts.customer_country.upper():
        return None
    return f"card from {card.upper()}, customer in {facts.customer_country.upper()}"


def _distinct_cards(config: RuleConfig, facts: RiskFacts) -> str | None:
    cards = facts.recent.get(RuleName.DISTINCT_CARDS)
    if cards is None or config.limit is None or cards <= config.limit:
        return None
    return f"{cards} cards within {config.window_seconds}s, limit {config.limit}"


def _gateway_risk(config: RuleConfig, facts: RiskFacts) -> str | None:
    level = facts.card.risk_level if facts.card else None
    if level is None or level not in config.levels:
        return None
    return f"the gateway rates it {level}"


RULES: Mapping[RuleName, tuple[frozenset[RiskStage], Rule]] = {
    RuleName.VELOCITY_CUSTOMER: (frozenset({RiskStage.CREATE}), _velocity),
    RuleName.VELOCITY_EMAIL: (frozenset({RiskStage.CREATE}), _velocity),
    RuleName.VELOCITY_IP: (frozenset({RiskStage.CREATE}), _velocity),
    RuleName.AMOUNT: (frozenset({RiskStage.CREATE}), _amount),
    RuleName.FIRST_PURCHASE: (frozenset({RiskStage.CREATE}), _first_purchase),
    RuleName.VELOCITY_CARD: (frozenset({RiskStage.AUTHORIZATION}), _velocity),
    RuleName.DISTINCT_CARDS: (frozenset({RiskStage.AUTHORIZATION}), _distinct_cards),
    RuleName.COUNTRY_MISMATCH: (frozenset({RiskStage.AUTHORIZATION}), _country_mismatch),
    RuleName.GATEWAY_RISK: (frozenset({RiskStage.AUTHORIZATION}), _gateway_risk),
}


def rules_at(config: RiskConfig, stage: RiskStage) -> list[RuleConfig]:
    """The enabled rules that run at `stage`."""
    return [r for r in config.rules if r.enabled and stage in RULES[r.rule][0]]


def assess(config: RiskConfig, facts: RiskFacts) -> Assessment:
    """Every enabled rule of the stage scores; the total decides: block at `block_score`, review
    at `review_score`, else allow."""
    hits: list[RuleHit] = []
    for rule in rules_at(config, facts.stage):
        detail = RULES[rule.rule][1](rule, facts)
        if detail is not None:
            hits.append(
                RuleHit(rule=rule.rule, score=rule.score, reason=REASONS[rule.rule], detail=detail)
            )
    score = sum(h.score for h in hits)
    decision = (
        RiskDecision.BLOCK
        if score >= config.block_score
        else RiskDecision.REVIEW
        if score >= config.review_score
        else RiskDecision.ALLOW
    )
    return Assessment(decision=decision, score=score, hits=hits)
