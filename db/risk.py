"""Risk screening in the ledger: the rules as configured, assessments counted over recent history
and stored, reviews decided, and the review queue.

Velocity is counted and the assessment stored in one transaction that first takes a transaction
advisory lock per key it counts (customer, email, IP, card): two checkouts sharing a key, on any
API or worker replica, are assessed one after the other, so a burst cannot slip under a limit."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from domain.checkout import CardSignals
from domain.risk import (
    AssessCheckout,
    Assessment,
    ReviewItem,
    ReviewOutcome,
    ReviewStatus,
    RiskConfig,
    RiskDecision,
    RiskFacts,
    RiskStage,
    RiskVerdict,
    RuleConfig,
    RuleHit,
    RuleName,
    assess,
    rules_at,
)

# The column each velocity rule counts by.
_KEY_COLUMNS: dict[RuleName, str] = {
    RuleName.VELOCITY_CUSTOMER: "customer_id",
    RuleName.VELOCITY_EMAIL: "customer_email",
    RuleName.VELOCITY_IP: "client_ip",
    RuleName.VELOCITY_CARD: "card_fingerprint",
}


async def load_config(conn: asyncpg.Connection | asyncpg.Pool) -> RiskConfig:
    settings = await conn.fetchrow("SELECT * FROM risk_settings")
    rows = await conn.fetch("SELECT rule, enabled, score, params FROM risk_rules ORDER BY rule")
    rules = [
        RuleConfig.model_validate(
            {"rule": r["rule"], "enabled": r["enabled"], "score": r["score"]}
            | json.loads(r["params"])
        )
        for r in rows
    ]
    if settings is None:
        return RiskConfig(rules=rules)
    return RiskConfig(
        review_score=settings["review_score"],
        block_score=settings["block_score"],
        review_window_seconds=settings["review_window_seconds"],
        review_default=ReviewOutcome(settings["review_default"]),
        rules=rules,
    )


def _key_values(request: AssessCheckout, card: CardSignals | None) -> dict[RuleName, str | None]:
    return {
        RuleName.VELOCITY_CUSTOMER: request.customer_id,
        RuleName.VELOCITY_EMAIL: request.customer_email.lower() if request.customer_email else None,
        RuleName.VELOCITY_IP: request.client_ip,
        RuleName.VELOCITY_CARD: card.fingerprint if card else None,
    }


async def assess_checkout(
    pool: asyncpg.Pool, request: AssessCheckout, card: CardSignals | None = None
) -> RiskVerdict:
    """Assess a checkout at a stage once: a retry (or a second run) gets the stored verdict."""
    keys = _key_values(request, card)
    async with pool.acquire() as conn, conn.transaction():
        config = await load_config(conn)
        rules = rules_at(config, request.stage)
        counted = {r.rule: keys[r.rule] for r in rules if r.rule in _KEY_COLUMNS}
        locks = sorted(f"{rule}:{value}" for rule, value in counted.items() if value is not None)
        if any(r.rule is RuleName.DISTINCT_CARDS for r in rules):
            locks = sorted({*locks, f"cards:{request.customer_id}"})
        for lock in locks:  # in one order everywhere: no deadlock between two assessments
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 17))", lock)
        stored = await _stored(conn, request.checkout_id, request.stage)
        if stored is not None:
            return stored
        recent: dict[RuleName, int] = {}
        for rule in rules:
            if rule.rule in _KEY_COLUMNS and counted.get(rule.rule) is not None:
                recent[rule.rule] = await conn.fetchval(
                    f"""
                    SELECT count(*) FROM risk_assessments
                    WHERE {_KEY_COLUMNS[rule.rule]} = $1 AND stage = $2 AND decision <> 'block'
                      AND created_at > clock_timestamp() - make_interval(secs => $3)
                      AND checkout_id <> $4
                    """,
                    counted[rule.rule], request.stage.value, rule.window_seconds or 0,
                    request.checkout_id,
                )  # fmt: skip
            elif rule.rule is RuleName.DISTINCT_CARDS and card and card.fingerprint:
                recent[rule.rule] = await conn.fetchval(
                    """
                    SELECT count(DISTINCT f) FROM (
                        SELECT card_fingerprint AS f FROM risk_assessments
                        WHERE customer_id = $1 AND stage = 'authorization'
                          AND card_fingerprint IS NOT NULL AND decision <> 'block'
                          AND created_at > clock_timestamp() - make_interval(secs => $2)
                          AND checkout_id <> $3
                        UNION ALL SELECT $4::text) cards
                    """,
                    request.customer_id, rule.window_seconds or 0, request.checkout_id,
                    card.fingerprint,
                )  # fmt: skip
        first_purchase = any(r.rule is RuleName.FIRST_PURCHASE for r in rules) and not (
            await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM payments WHERE customer_id = $1"
                " AND amount_captured > 0)",
                request.customer_id,
            )
        )
        facts = RiskFacts(
            stage=request.stage,
            amount=request.amount,
            currency=request.currency,
            customer_country=request.customer_country,
            card=card,
            recent=recent,
            first_purchase=first_purchase,
        )
        assessment = assess(config, facts)
        review = assessment.decision is RiskDecision.REVIEW
        row = await conn.fetchrow(
            """
            INSERT INTO risk_assessments (
                checkout_id, workflow_id, stage, customer_id, customer_email, client_ip,
                customer_country, card_fingerprint, card_country, amount, currency, inputs, hits,
                score, decision, review_status, review_deadline)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13::jsonb, $14, $15,
                    $16, CASE WHEN $16::text IS NULL THEN NULL ELSE LEAST(
                        clock_timestamp() + make_interval(secs => $17), $18) END)
            RETURNING id, review_deadline
            """,
            request.checkout_id, request.workflow_id, request.stage.value, request.customer_id,
            keys[RuleName.VELOCITY_EMAIL], request.client_ip, request.customer_country,
            card.fingerprint if card else None, card.country if card else None,
            request.amount, request.currency,
            json.dumps({"request": request.model_dump(mode="json", exclude={"new_checkout"}),
                        "facts": facts.model_dump(mode="json")}),
            json.dumps([h.model_dump(mode="json") for h in assessment.hits]),
            assessment.score, assessment.decision.value,
            ReviewStatus.PENDING.value if review else None,
            config.review_window_seconds, request.review_by,
        )  # fmt: skip
        return RiskVerdict(
            assessment_id=row["id"],
            assessment=assessment,
            review_deadline=row["review_deadline"],
            review_default=config.review_default,
        )


async def _stored(
    conn: asyncpg.Connection, checkout_id: str, stage: RiskStage
) -> RiskVerdict | None:
    row = await conn.fetchrow(
        "SELECT id, decision, score, hits, review_deadline FROM risk_assessments"
        " WHERE checkout_id = $1 AND stage = $2",
        checkout_id,
        stage.value,
    )
    if row is None:
        return None
    config = await load_config(conn)
    return RiskVerdict(
        assessment_id=row["id"],
        assessment=Assessment(
            decision=RiskDecision(row["decision"]),
            score=row["score"],
            hits=[RuleHit.model_validate(h) for h in json.loads(row["hits"])],
        ),
        review_deadline=row["review_deadline"],
        review_default=config.review_default,
    )


async def record_review(
    pool: asyncpg.Pool, assessment_id: int, status: ReviewStatus, reviewer: str | None, note: str
) -> None:
    """The review's end, once: a retry changes nothing."""
    await pool.execute(
        """
        UPDATE risk_assessments
        SET review_status = $2, reviewer = $3, review_note = $4, reviewed_at = clock_timestamp()
        WHERE id = $1 AND review_status = 'pending'
        """,
        assessment_id, status.value, reviewer, note,
    )  # fmt: skip


async def reviews(
    pool: asyncpg.Pool,
    *,
    status: ReviewStatus | None = ReviewStatus.PENDING,
    stage: RiskStage | None = None,
    customer_id: str | None = None,
    currency: str | None = None,
    created_after: datetime | None = None,
    limit: int = 50,
) -> list[ReviewItem]:
    """The review queue, oldest first."""
    rows = await pool.fetch(
        """
        SELECT id, checkout_id, workflow_id, stage, customer_id, amount, currency, score, hits,
               review_status, review_deadline, created_at, reviewer
        FROM risk_assessments
        WHERE decision = 'review'
          AND ($1::text IS NULL OR review_status = $1)
          AND ($2::text IS NULL OR stage = $2)
          AND ($3::text IS NULL OR customer_id = $3)
          AND ($4::text IS NULL OR currency = $4)
          AND ($5::timestamptz IS NULL OR created_at > $5)
        ORDER BY created_at, id LIMIT $6
        """,
        status.value if status else None, stage.value if stage else None, customer_id, currency,
        created_after, limit,
    )  # fmt: skip
    return [_item(r) for r in rows]


def _item(row: Any) -> ReviewItem:
    return ReviewItem(
        assessment_id=row["id"],
        checkout_id=row["checkout_id"],
        workflow_id=row["workflow_id"],
        stage=RiskStage(row["stage"]),
        customer_id=row["customer_id"],
        amount=row["amount"],
        currency=row["currency"],
        score=row["score"],
        hits=[RuleHit.model_validate(h) for h in json.loads(row["hits"])],
        status=ReviewStatus(row["review_status"]),
        review_deadline=row["review_deadline"],
        created_at=row["created_at"],
        reviewer=row["reviewer"],
    )
