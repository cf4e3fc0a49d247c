"""Each risk rule on its own, and how the total score becomes a decision."""

from __future__ import annotations

from typing import Any

import pytest

from domain.checkout import CardSignals
from domain.risk import (
    RiskConfig,
    RiskDecision,
    RiskFacts,
    RiskStage,
    RuleConfig,
    RuleName,
    assess,
)


def config(*rules: RuleConfig, review: int = 50, block: int = 100) -> RiskConfig:
    return RiskConfig(review_score=review, block_score=block, rules=list(rules))


def facts(stage: RiskStage = RiskStage.CREATE, **fields: Any) -> RiskFacts:
    base: dict[str, Any] = {"stage": stage, "amount": 2_500, "currency": "USD"}
    return RiskFacts(**{**base, **fields})


def velocity(rule: RuleName, limit: int = 3, score: int = 100) -> RuleConfig:
    return RuleConfig(rule=rule, score=score, limit=limit, window_seconds=600)


@pytest.mark.parametrize(
    "rule", [RuleName.VELOCITY_CUSTOMER, RuleName.VELOCITY_EMAIL, RuleName.VELOCITY_IP]
)
def test_velocity_allows_up_to_the_limit_and_blocks_the_next(rule: RuleName) -> None:
    rules = config(velocity(rule))
    assert assess(rules, facts(recent={rule: 2})).decision is RiskDecision.ALLOW  # the 3rd
    blocked = assess(rules, facts(recent={rule: 3}))  # the 4th
    assert blocked.decision is RiskDecision.BLOCK
    assert blocked.reason == "too_many_attempts"
    assert [h.rule for h in blocked.hits] == [rule]


def test_velocity_without_the_key_does_not_hit() -> None:
    assert assess(config(velocity(RuleName.VELOCITY_IP)), facts()).hits == []


def test_card_velocity_runs_at_authorization_only() -> None:
    rules = config(velocity(RuleName.VELOCITY_CARD, limit=1))
    recent = {RuleName.VELOCITY_CARD: 1}
    assert assess(rules, facts(recent=recent)).decision is RiskDecision.ALLOW
    at_auth = assess(rules, facts(RiskStage.AUTHORIZATION, recent=recent))
    assert at_auth.decision is RiskDecision.BLOCK


def test_amount_over_the_currency_threshold_goes_to_review() -> None:
    rules = config(RuleConfig(rule=RuleName.AMOUNT, score=60, thresholds={"USD": 100_000}))
    assert assess(rules, facts(amount=100_000)).decision is RiskDecision.ALLOW
    review = assess(rules, facts(amount=100_001))
    assert review.decision is RiskDecision.REVIEW
    assert review.reason == "amount_not_accepted"
    # minor units per currency: the same number in another currency is not compared
    assert assess(rules, facts(amount=100_001, currency="INR")).hits == []


def test_first_purchase_over_a_threshold_only_for_a_new_customer() -> None:
    rules = config(RuleConfig(rule=RuleName.FIRST_PURCHASE, score=50, thresholds={"USD": 20_000}))
    assert assess(rules, facts(amount=50_000)).hits == []
    first = assess(rules, facts(amount=50_000, first_purchase=True))
    assert first.decision is RiskDecision.REVIEW
    assert assess(rules, facts(amount=20_000, first_purchase=True)).hits == []


def test_card_country_differing_from_the_customers_scores() -> None:
    rules = config(RuleConfig(rule=RuleName.COUNTRY_MISMATCH, score=30), review=30)
    stage = RiskStage.AUTHORIZATION
    same = facts(stage, customer_country="US", card=CardSignals(country="us"))
    other = facts(stage, customer_country="US", card=CardSignals(country="IN"))
    unknown = facts(stage, card=CardSignals(country="IN"))
    assert assess(rules, same).hits == []
    assert assess(rules, unknown).hits == []
    hit = assess(rules, other)
    assert hit.decision is RiskDecision.REVIEW and hit.reason == "card_not_accepted"
    assert "IN" in hit.hits[0].detail


def test_many_distinct_cards_per_customer() -> None:
    rules = config(
        RuleConfig(rule=RuleName.DISTINCT_CARDS, score=100, limit=3, window_seconds=86_400)
    )
    stage = RiskStage.AUTHORIZATION
    assert assess(rules, facts(stage, recent={RuleName.DISTINCT_CARDS: 3})).hits == []
    blocked = assess(rules, facts(stage, recent={RuleName.DISTINCT_CARDS: 4}))
    assert blocked.decision is RiskDecision.BLOCK


def test_the_gateways_own_risk_level() -> None:
    rules = config(RuleConfig(rule=RuleName.GATEWAY_RISK, score=50, levels=["elevated"]))
    stage = RiskStage.AUTHORIZATION
    normal = facts(stage, card=CardSignals(risk_level="normal"))
    elevated = facts(stage, card=CardSignals(risk_level="elevated"))
    assert assess(rules, normal).hits == []
    assert assess(rules, elevated).decision is RiskDecision.REVIEW


def test_scores_add_up_and_disabled_rules_do_not_run() -> None:
    amount = RuleConfig(rule=RuleName.AMOUNT, score=60, thresholds={"USD": 1_000})
    first = RuleConfig(rule=RuleName.FIRST_PURCHASE, score=50, thresholds={"USD": 1_000})
    both = assess(config(amount, first), facts(first_purchase=True))
    assert (both.decision, both.score) == (RiskDecision.BLOCK, 110)
    assert both.reason == "amount_not_accepted"
    off = first.model_copy(update={"enabled": False})
    assert assess(config(amount, off), facts(first_purchase=True)).score == 60


def test_a_rule_row_with_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        RuleConfig.model_validate({"rule": "amount", "score": 1, "treshold": {"USD": 1}})
