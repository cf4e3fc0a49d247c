"""Risk assessments in a real PostgreSQL: velocity counted under concurrency, each assessment
stored once, the rules read from their table, the review queue."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from prometheus_client import CollectorRegistry

from api.metrics import serve_metrics
from db import risk
from devstack.stack import free_port
from domain.checkout import CardSignals
from domain.risk import (
    AssessCheckout,
    ReviewStatus,
    RiskDecision,
    RiskStage,
    RuleName,
)
from tests.db.test_ledger_gauges import scrape, value


def request(customer: str, stage: RiskStage = RiskStage.CREATE, **fields: object) -> AssessCheckout:
    checkout = f"pay_{uuid.uuid4().hex[:24]}"
    base: dict[str, object] = {
        "stage": stage,
        "checkout_id": checkout,
        "workflow_id": f"checkout-{checkout}",
        "customer_id": customer,
        "customer_email": f"{customer}@example.com",
        "amount": 2_500,
        "currency": "USD",
        "gateway": "stripe",
    }
    return AssessCheckout.model_validate({**base, **fields})


async def set_rule(pool: asyncpg.Pool, rule: RuleName, **params: object) -> None:
    await pool.execute(
        "UPDATE risk_rules SET enabled = true, params = params || $2::jsonb WHERE rule = $1",
        rule.value,
        json.dumps(params),
    )


async def test_a_concurrent_burst_from_one_customer_stops_exactly_at_the_limit(
    pool: asyncpg.Pool,
) -> None:
    await set_rule(pool, RuleName.VELOCITY_CUSTOMER, limit=5, window_seconds=600)
    verdicts = await asyncio.gather(
        *(risk.assess_checkout(pool, request("c_burst")) for _ in range(16))
    )

    decisions = [v.assessment.decision for v in verdicts]
    assert decisions.count(RiskDecision.ALLOW) == 5
    assert decisions.count(RiskDecision.BLOCK) == 11
    blocked = next(v for v in verdicts if v.assessment.decision is RiskDecision.BLOCK)
    assert blocked.assessment.reason == "too_many_attempts"
    # another customer is not counted with this one
    other = await risk.assess_checkout(pool, request("c_other"))
    assert other.assessment.decision is RiskDecision.ALLOW


async def test_the_window_slides_past_old_checkouts(pool: asyncpg.Pool) -> None:
    await set_rule(pool, RuleName.VELOCITY_EMAIL, limit=1, window_seconds=60)
    first = await risk.assess_checkout(pool, request("c_slide"))
    assert first.assessment.decision is RiskDecision.ALLOW
    await pool.execute(
        "UPDATE risk_assessments SET created_at = created_at - interval '61 seconds'"
    )
    again = await risk.assess_checkout(pool, request("c_slide"))
    assert again.assessment.decision is RiskDecision.ALLOW


async def test_an_assessment_is_stored_once_with_its_inputs_and_hits(pool: asyncpg.Pool) -> None:
    await set_rule(pool, RuleName.VELOCITY_IP, limit=1, window_seconds=600)
    await risk.assess_checkout(pool, request("c_ip1", client_ip="203.0.113.9"))
    second = request("c_ip2", client_ip="203.0.113.9")
    verdict = await risk.assess_checkout(pool, second)
    retried = await risk.assess_checkout(pool, second)

    assert verdict.assessment.decision is RiskDecision.BLOCK
    assert retried == verdict
    row = await pool.fetchrow(
        "SELECT * FROM risk_assessments WHERE checkout_id = $1", second.checkout_id
    )
    assert row is not None and row["decision"] == "block" and row["client_ip"] == "203.0.113.9"
    assert json.loads(row["hits"])[0]["rule"] == "velocity_ip"
    assert json.loads(row["inputs"])["facts"]["recent"] == {"velocity_ip": 1}


async def test_rules_change_without_a_deploy(pool: asyncpg.Pool) -> None:
    big = request("c_big", amount=500_000)
    assert (await risk.assess_checkout(pool, big)).assessment.decision is RiskDecision.REVIEW
    await pool.execute(
        "UPDATE risk_rules SET enabled = false WHERE rule IN ('amount', 'first_purchase')"
    )
    bigger = request("c_big", amount=600_000)
    assert (await risk.assess_checkout(pool, bigger)).assessment.decision is RiskDecision.ALLOW


async def test_distinct_cards_and_card_velocity_at_authorization(pool: asyncpg.Pool) -> None:
    await set_rule(pool, RuleName.DISTINCT_CARDS, limit=2, window_seconds=600)
    stage = RiskStage.AUTHORIZATION
    decisions = []
    for card in ("fp_a", "fp_b", "fp_a", "fp_c"):
        verdict = await risk.assess_checkout(
            pool, request("c_cards", stage), CardSignals(fingerprint=card, country="US")
        )
        decisions.append(verdict.assessment.decision)
    assert decisions == [RiskDecision.ALLOW] * 3 + [RiskDecision.REVIEW]


async def test_the_review_queue_oldest_first_and_a_decided_review_leaves_it(
    pool: asyncpg.Pool,
) -> None:
    by = datetime.now(UTC) + timedelta(minutes=5)
    first = await risk.assess_checkout(pool, request("c_q", amount=500_000, review_by=by))
    second = await risk.assess_checkout(pool, request("c_q2", amount=500_000))
    assert first.review_deadline is not None and first.review_deadline <= by
    assert second.review_deadline is not None and second.review_deadline > by

    queue = await risk.reviews(pool)
    assert [q.assessment_id for q in queue] == [first.assessment_id, second.assessment_id]
    assert [q.assessment_id for q in await risk.reviews(pool, customer_id="c_q2")] == [
        second.assessment_id
    ]
    await risk.record_review(pool, first.assessment_id, ReviewStatus.APPROVED, "op-1", "known")
    await risk.record_review(pool, first.assessment_id, ReviewStatus.REJECTED, "op-2", "late")
    assert [q.assessment_id for q in await risk.reviews(pool)] == [second.assessment_id]
    (done,) = await risk.reviews(pool, status=ReviewStatus.APPROVED)
    assert (done.reviewer, done.status) == ("op-1", ReviewStatus.APPROVED)


async def test_assessments_by_decision_and_rule_and_the_review_queue_are_metrics(
    pool: asyncpg.Pool,
) -> None:
    await set_rule(pool, RuleName.VELOCITY_CUSTOMER, limit=1, window_seconds=600)
    await risk.assess_checkout(pool, request("c_m"))
    await risk.assess_checkout(pool, request("c_m"))
    await risk.assess_checkout(pool, request("c_m2", amount=500_000))
    address = f"127.0.0.1:{free_port()}"
    stop = serve_metrics(address, pool, CollectorRegistry())
    try:
        samples = await scrape(address)
    finally:
        stop()

    def assessed(decision: str) -> float:
        return value(samples, "payments_risk_assessments_total", stage="create", decision=decision)

    assert (assessed("allow"), assessed("block"), assessed("review")) == (1, 1, 1)
    hits = "payments_risk_rule_hits_total"
    assert value(samples, hits, stage="create", rule="velocity_customer") == 1
    assert value(samples, hits, stage="create", rule="first_purchase") == 1
    assert value(samples, "payments_risk_reviews_pending") == 1
