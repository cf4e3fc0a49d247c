"""Disputes in the ledger: record a dispute against its payment, then each of its steps; and the
reads the API serves.

Funds follow a separate dimension from the status: each step may name the net amount the ledger
should show withdrawn, and the difference is posted (`merchant:disputes` against
`gateway:<gateway>`), so a retried or repeated step never posts twice. Each transaction locks the
dispute row and writes an audit row whose unique `record_key` makes a retry apply it once."""

from __future__ import annotations

import asyncpg

from domain.checkout import Gateway, PaymentStatus
from domain.dispute import (
    DisputedPayment,
    DisputeEvidence,
    DisputeOpened,
    DisputeOpening,
    DisputeRecord,
    DisputeRecorded,
    DisputeStage,
    DisputeState,
    DisputeStatus,
    DisputeStep,
    UnverifiedDispute,
)
from domain.money import format_amount

_REFUNDED = ("partially_refunded", "refunded")


async def open_dispute(pool: asyncpg.Pool, opening: DisputeOpening) -> DisputeOpened:
    """Record the dispute once, resolved to our payment (flagged when there is none, or when
    the payment was refunded already), and mark the payment disputed."""
    d = opening.dispute
    async with pool.acquire() as conn, conn.transaction():
        payment = await _payment_of(conn, d.gateway, d.gateway_payment_id, d.gateway_charge_id)
        existing = await conn.fetchrow(
            "SELECT * FROM disputes WHERE dispute_id = $1 FOR UPDATE", opening.dispute_id
        )
        if existing is not None:  # an earlier attempt, or an earlier run of this dispute
            return _opened(existing, payment)
        flagged: str | None = None
        if payment is None:
            flagged = f"no payment of ours matches {d.gateway} payment {d.gateway_payment_id}"
        elif payment["amount_refunded"] > 0 or payment["status"] in _REFUNDED:
            refunded = format_amount(payment["amount_refunded"], payment["currency"])
            flagged = (
                f"the payment was already refunded ({refunded}); the customer may be paid"
                " twice — check the refund and the dispute with the gateway"
            )
        await conn.execute(
            """
            INSERT INTO disputes (dispute_id, gateway, gateway_dispute_id, payment_id,
                gateway_payment_id, workflow_id, amount, currency, reason, stage, status,
                due_by, flagged_reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            """,
            opening.dispute_id, d.gateway.value, d.gateway_dispute_id,
            payment["payment_id"] if payment else None, d.gateway_payment_id,
            opening.workflow_id, d.amount, d.currency, d.reason, d.stage.value,
            DisputeStatus.OPEN.value, d.due_by, flagged,
        )  # fmt: skip
        status: str | None = None
        if payment is not None:
            status = PaymentStatus.DISPUTED.value
            await conn.execute(
                """
                UPDATE payments SET disputed = true, status = $2, updated_at = now(),
                    status_before_dispute = CASE WHEN status IN ('disputed', 'dispute_lost')
                        THEN status_before_dispute ELSE status END
                WHERE payment_id = $1
                """,
                payment["payment_id"], status,
            )  # fmt: skip
        detail = (
            f"{d.gateway} dispute {d.gateway_dispute_id} ({d.reason or 'no reason given'})"
            f" for {format_amount(d.amount, d.currency)}"
        )
        await _audit(
            conn, payment["payment_id"] if payment else None, f"{opening.dispute_id}:opened",
            "dispute_opened", status or "unknown", detail + (f"; flagged: {flagged}" if
            flagged else ""), opening.dispute_id, DisputeStatus.OPEN,
        )  # fmt: skip
        row = await conn.fetchrow(
            "SELECT * FROM disputes WHERE dispute_id = $1", opening.dispute_id
        )
        assert row is not None
        return _opened(row, payment, status)


async def record_dispute_step(pool: asyncpg.Pool, record: DisputeRecord) -> DisputeRecorded:
    """Apply one step: the dispute's status, evidence and deadline; the funds withdrawn (the
    difference to `withdrawn_target`); the payment's status once the dispute is final."""
    async with pool.acquire() as conn, conn.transaction():
        dispute = await conn.fetchrow(
            "SELECT * FROM disputes WHERE dispute_id = $1 FOR UPDATE", record.dispute_id
        )
        assert dispute is not None, f"no dispute {record.dispute_id}"
        payment_id: str | None = dispute["payment_id"]
        payment = None
        if payment_id is not None:
            payment = await conn.fetchrow(
                "SELECT * FROM payments WHERE payment_id = $1 FOR UPDATE", payment_id
            )
        done = await conn.fetchval(
            "SELECT true FROM audit_log WHERE record_key = $1", record.record_key
        )
        if done:  # applied by an earlier attempt
            return DisputeRecorded(
                payment_status=PaymentStatus(payment["status"]) if payment else None,
                amount_withdrawn=dispute["amount_withdrawn"],
            )
        withdrawn = dispute["amount_withdrawn"]
        detail = record.detail
        if record.withdrawn_target is not None and record.withdrawn_target != withdrawn:
            delta = record.withdrawn_target - withdrawn
            moved = format_amount(abs(delta), dispute["currency"])
            if payment is not None:
                gateway = Gateway(dispute["gateway"])
                await conn.executemany(
                    """
                    INSERT INTO ledger_entries (payment_id, record_key, account, amount,
                                                currency)
                    VALUES ($1, $2, $3, $4, $5)
                    """,
                    [
                        (payment_id, record.record_key, "merchant:disputes", delta,
                         dispute["currency"]),
                        (payment_id, record.record_key, f"gateway:{gateway}", -delta,
                         dispute["currency"]),
                    ],
                )  # fmt: skip
                detail += f"; {moved} {'withdrawn' if delta > 0 else 'reinstated'}"
            else:
                detail += f"; {moved} moved at the gateway, not posted: payment unknown"
            withdrawn = record.withdrawn_target
        status = payment["status"] if payment else None
        if payment is not None and record.status in (
            DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.CLOSED,
            DisputeStatus.PREVENTED,
        ):  # fmt: skip
            if record.status is DisputeStatus.LOST:
                status = PaymentStatus.DISPUTE_LOST.value
            elif status == PaymentStatus.DISPUTED.value:
                status = payment["status_before_dispute"] or PaymentStatus.CAPTURED.value
            await conn.execute(
                "UPDATE payments SET status = $2, updated_at = now() WHERE payment_id = $1",
                payment_id,
                status,
            )
        await conn.execute(
            """
            UPDATE disputes SET status = $2, stage = $3, due_by = COALESCE($4, due_by),
                evidence = COALESCE($5::jsonb, evidence), submitted = submitted OR $6,
                deadline_action = COALESCE($7, deadline_action), amount_withdrawn = $8,
                updated_at = now()
            WHERE dispute_id = $1
            """,
            record.dispute_id, record.status.value, record.stage.value, record.due_by,
            record.evidence.model_dump_json() if record.evidence else None,
            record.submitted, record.deadline_action, withdrawn,
        )  # fmt: skip
        await _audit(
            conn, payment_id, record.record_key, record.step, status or "unknown", detail,
            record.dispute_id, record.status,
        )  # fmt: skip
        return DisputeRecorded(
            payment_status=PaymentStatus(status) if status else None,
            amount_withdrawn=withdrawn,
        )


async def disputed_payment(pool: asyncpg.Pool, dispute_id: str) -> DisputedPayment | None:
    """The disputed payment's refunds now; None when the dispute names no payment of ours."""
    row = await pool.fetchrow(
        """
        SELECT p.payment_id, p.currency, p.amount_refunded, p.amount_refund_pending
        FROM disputes d JOIN payments p USING (payment_id) WHERE d.dispute_id = $1
        """,
        dispute_id,
    )
    if row is None:
        return None
    return DisputedPayment(
        payment_id=row["payment_id"],
        currency=row["currency"].strip(),
        amount_refunded=row["amount_refunded"],
        amount_refund_pending=row["amount_refund_pending"],
    )


async def flag_unverified_dispute(pool: asyncpg.Pool, unverified: UnverifiedDispute) -> None:
    """Leave a dispute event the gateway does not confirm to an operator: a reconciliation flag
    of kind `dispute` (the dispute workflow's id as its run), once per gateway answer. Nothing
    else is written: there is no dispute to record and no payment to name."""
    await pool.execute(
        """
        INSERT INTO reconciliation_flags (run_id, object_kind, object_id, payment_id,
                                          ledger_status, gateway_status, detail)
        VALUES ($1, 'dispute', $2, NULL, 'not_recorded', $3, $4)
        ON CONFLICT (object_kind, object_id, ledger_status, gateway_status) DO NOTHING
        """,
        unverified.workflow_id, unverified.dispute_id, unverified.gateway_answer,
        unverified.detail,
    )  # fmt: skip


async def _payment_of(
    conn: asyncpg.Connection,
    gateway: Gateway,
    gateway_payment_id: str | None,
    gateway_charge_id: str | None,
) -> asyncpg.Record | None:
    """Stripe disputes name the PaymentIntent (our `gateway_payment_id`) and the charge;
    Razorpay disputes name the payment (our `gateway_charge_id`)."""
    candidates = (
        [("gateway_payment_id", gateway_payment_id), ("gateway_charge_id", gateway_charge_id)]
        if gateway is Gateway.STRIPE
        else [("gateway_charge_id", gateway_payment_id)]
    )
    for column, value in candidates:
        if value:
            payment = await conn.fetchrow(
                f"SELECT * FROM payments WHERE gateway = $1 AND {column} = $2 FOR UPDATE",
                gateway.value,
                value,
            )
            if payment is not None:
                return payment
    return None


def _opened(
    dispute: asyncpg.Record, payment: asyncpg.Record | None, status: str | None = None
) -> DisputeOpened:
    payment_status = status or (payment["status"] if payment else None)
    return DisputeOpened(
        payment_id=dispute["payment_id"],
        payment_status=PaymentStatus(payment_status) if payment_status else None,
        flagged=dispute["flagged_reason"],
        status=DisputeStatus(dispute["status"]),
        submitted=dispute["submitted"],
        amount_withdrawn=dispute["amount_withdrawn"],
    )


async def _audit(
    conn: asyncpg.Connection,
    payment_id: str | None,
    record_key: str,
    step: str,
    payment_status: str,
    detail: str,
    dispute_id: str,
    dispute_status: DisputeStatus,
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (payment_id, record_key, step, status, detail, dispute_id,
                               dispute_status)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (record_key) DO NOTHING
        """,
        payment_id, record_key, step, payment_status, detail, dispute_id, dispute_status.value,
    )  # fmt: skip


async def dispute_state(pool: asyncpg.Pool, dispute_id: str) -> DisputeState | None:
    found = await _dispute_states(pool, "d.dispute_id = $1 LIMIT 1", dispute_id)
    return found[0] if found else None


async def dispute_workflow(pool: asyncpg.Pool, dispute_id: str) -> str | None:
    workflow_id: str | None = await pool.fetchval(
        "SELECT workflow_id FROM disputes WHERE dispute_id = $1", dispute_id
    )
    return workflow_id


async def disputes_by_id(pool: asyncpg.Pool, dispute_ids: list[str]) -> dict[str, DisputeState]:
    """The disputes named, by id, in two queries whatever their number."""
    found = await _dispute_states(pool, "d.dispute_id = ANY($1::text[])", dispute_ids)
    return {d.dispute_id: d for d in found}


async def _dispute_states(pool: asyncpg.Pool, condition: str, *args: object) -> list[DisputeState]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT d.*, p.status AS payment_status FROM disputes d"
            f" LEFT JOIN payments p USING (payment_id) WHERE {condition}",
            *args,
        )
        steps = await conn.fetch(
            "SELECT dispute_id, at, step, dispute_status, detail FROM audit_log"
            " WHERE dispute_id = ANY($1::text[]) ORDER BY id",
            [row["dispute_id"] for row in rows],
        )
    timelines: dict[str, list[DisputeStep]] = {row["dispute_id"]: [] for row in rows}
    for s in steps:
        timelines[s["dispute_id"]].append(
            DisputeStep(
                at=s["at"],
                step=s["step"],
                status=DisputeStatus(s["dispute_status"]),
                detail=s["detail"],
            )
        )
    return [
        DisputeState(
            dispute_id=row["dispute_id"],
            workflow_id=row["workflow_id"],
            gateway=Gateway(row["gateway"]),
            gateway_dispute_id=row["gateway_dispute_id"],
            status=DisputeStatus(row["status"]),
            stage=DisputeStage(row["stage"]),
            payment_id=row["payment_id"],
            gateway_payment_id=row["gateway_payment_id"],
            amount=row["amount"],
            currency=row["currency"],
            reason=row["reason"],
            due_by=row["due_by"],
            evidence=DisputeEvidence.model_validate_json(row["evidence"])
            if row["evidence"]
            else None,
            submitted=row["submitted"],
            deadline_action=row["deadline_action"],
            amount_withdrawn=row["amount_withdrawn"],
            flagged=row["flagged_reason"],
            payment_status=PaymentStatus(row["payment_status"]) if row["payment_status"] else None,
            history=timelines[row["dispute_id"]],
        )
        for row in rows
    ]
