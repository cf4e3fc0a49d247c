"""Refunds in the ledger: reserve an amount on its payment, then settle or release it; and the
reads the API serves.

Each runs in one transaction that locks the payment row first (`SELECT … FOR UPDATE`), so two
refunds of the same payment are decided one after the other, and writes an audit row whose unique
`record_key` makes a retried activity apply its change once."""

from __future__ import annotations

import asyncpg
from temporalio.exceptions import ApplicationError

from domain.checkout import Gateway, PaymentStatus
from domain.money import format_amount
from domain.refund import (
    RefundEffect,
    RefundMode,
    RefundReason,
    RefundRecord,
    RefundReservation,
    RefundState,
    RefundStatus,
    RefundStep,
    ReservationOutcome,
)

_CAPTURED = ("captured", "partially_refunded", "refunded")


async def reserve_refund(pool: asyncpg.Pool, r: RefundReservation) -> ReservationOutcome:
    """Reserve `amount` (None: all that is left) unless it is not positive, the payment is not
    captured, or captured - refunded - pending is less than it.

    Facts are recorded, requests may be refused: an observed refund (made at the gateway) has
    happened whatever the ledger says, so it is never refused for the payment's state or what is
    left; the conflict puts the payment in `needs_review` with a reconciliation flag."""
    async with pool.acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(
            "SELECT * FROM payments WHERE payment_id = $1 FOR UPDATE", r.payment_id
        )
        if payment is None:
            return _refused("unknown_payment", f"no payment {r.payment_id}")
        existing = await conn.fetchrow("SELECT * FROM refunds WHERE refund_id = $1", r.refund_id)
        if existing is not None:  # an earlier attempt reserved it and its answer was lost
            return _outcome(payment, existing)
        if r.gateway_refund_id is not None:
            recorded = await conn.fetchrow(
                "SELECT * FROM refunds WHERE gateway = $1 AND gateway_refund_id = $2",
                payment["gateway"],
                r.gateway_refund_id,
            )
            if recorded is not None:
                return _refused(
                    "already_recorded",
                    f"{r.gateway_refund_id} is recorded as refund {recorded['refund_id']}",
                )
        if r.capture_to_record > payment["amount_captured"]:
            payment = await _record_unrecorded_capture(conn, r, payment)
        available = (
            payment["amount_captured"]
            - payment["amount_refunded"]
            - payment["amount_refund_pending"]
        )
        currency = payment["currency"]
        amount = r.amount if r.amount is not None else available
        refusal: tuple[str, str] | None = None
        if r.amount is not None and r.amount <= 0:
            refusal = ("invalid_refund_amount", "the refund amount must be positive")
        elif payment["status"] not in _CAPTURED or payment["amount_captured"] <= 0:
            refusal = (
                "payment_not_refundable",
                f"payment is {payment['status']}; only captured payments can be refunded",
            )
        elif amount <= 0 or amount > available:
            refusal = (
                "refund_exceeds_available",
                f"{format_amount(max(available, 0), currency)} is left to refund"
                f" (captured {format_amount(payment['amount_captured'], currency)},"
                f" refunded {format_amount(payment['amount_refunded'], currency)},"
                f" pending {format_amount(payment['amount_refund_pending'], currency)})",
            )
        conflict: str | None = None
        if refusal is not None and r.mode is RefundMode.OBSERVED and amount > 0:
            conflict, refusal = refusal[1], None
        if refusal is not None:
            code, detail = refusal
            await _audit(
                conn, r.payment_id, f"{r.refund_id}:refused", "refund_refused",
                payment["status"], f"{code}: {detail}", None, RefundStatus.REFUSED,
            )  # fmt: skip
            return _refused(code, detail)
        await conn.execute(
            """
            INSERT INTO refunds (refund_id, payment_id, workflow_id, gateway, amount, currency,
                                 status, reason, note, mode, gateway_refund_id,
                                 idempotency_key)
            VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11)
            """,
            r.refund_id, r.payment_id, r.workflow_id, payment["gateway"], amount, currency,
            r.reason.value, r.note, r.mode.value, r.gateway_refund_id, r.idempotency_key,
        )  # fmt: skip
        await conn.execute(
            "UPDATE payments SET amount_refund_pending = amount_refund_pending + $2,"
            " updated_at = now() WHERE payment_id = $1",
            r.payment_id,
            amount,
        )
        await _audit(
            conn, r.payment_id, f"{r.refund_id}:reserved", "refund_reserved",
            payment["status"], f"{format_amount(amount, currency)} reserved ({r.mode})",
            r.refund_id, RefundStatus.PENDING,
        )  # fmt: skip
        if conflict is not None:
            await _flag_conflict(conn, r, payment, amount, conflict)
        refund = await conn.fetchrow("SELECT * FROM refunds WHERE refund_id = $1", r.refund_id)
        return _outcome(payment, refund)


async def record_refund_step(pool: asyncpg.Pool, record: RefundRecord) -> PaymentStatus:
    """Apply one refund step; settling posts the refund and moves the reserved amount to
    refunded, releasing gives it back. Returns the payment's status afterwards."""
    async with pool.acquire() as conn, conn.transaction():
        payment = await conn.fetchrow(
            "SELECT * FROM payments WHERE payment_id = $1 FOR UPDATE", record.payment_id
        )
        assert payment is not None, f"refund {record.refund_id} of an unknown payment"
        done = await conn.fetchval(
            "SELECT true FROM audit_log WHERE record_key = $1", record.record_key
        )
        if done:
            return PaymentStatus(payment["status"])  # applied by an earlier attempt
        refund = await conn.fetchrow(
            "SELECT * FROM refunds WHERE refund_id = $1 FOR UPDATE", record.refund_id
        )
        assert refund is not None, f"no refund {record.refund_id}"
        amount = refund["amount"]
        status = payment["status"]
        if record.effect is not RefundEffect.NONE and refund["status"] in (
            RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED,
        ):  # fmt: skip
            raise ApplicationError(
                f"refund {record.refund_id} is already {refund['status']}",
                type="refund_already_final", non_retryable=True,
            )  # fmt: skip
        if record.effect is RefundEffect.SETTLE:
            refunded = payment["amount_refunded"] + amount
            status = (
                PaymentStatus.NEEDS_REVIEW  # a conflict stays for an operator to see
                if payment["status"] == PaymentStatus.NEEDS_REVIEW
                else PaymentStatus.REFUNDED
                if refunded >= payment["amount_captured"]
                else PaymentStatus.PARTIALLY_REFUNDED
            )
            await conn.execute(
                """
                UPDATE payments SET amount_refund_pending = amount_refund_pending - $2,
                    amount_refunded = $3, status = $4, updated_at = now()
                WHERE payment_id = $1
                """,
                record.payment_id, amount, refunded, status.value,
            )  # fmt: skip
            gateway = Gateway(payment["gateway"])
            await conn.executemany(
                """
                INSERT INTO ledger_entries (payment_id, record_key, account, amount, currency)
                VALUES ($1, $2, $3, $4, $5)
                """,
                [
                    (record.payment_id, record.record_key, "merchant:refunds", amount,
                     refund["currency"]),
                    (record.payment_id, record.record_key, f"gateway:{gateway}", -amount,
                     refund["currency"]),
                ],
            )  # fmt: skip
        elif record.effect is RefundEffect.RELEASE:
            await conn.execute(
                "UPDATE payments SET amount_refund_pending = amount_refund_pending - $2,"
                " updated_at = now() WHERE payment_id = $1",
                record.payment_id,
                amount,
            )
        await conn.execute(
            """
            UPDATE refunds SET status = $2,
                gateway_refund_id = COALESCE($3, gateway_refund_id),
                failure_reason = COALESCE($4, failure_reason),
                updated_at = now()
            WHERE refund_id = $1
            """,
            record.refund_id, record.status.value, record.gateway_refund_id,
            record.failure_reason,
        )  # fmt: skip
        await _audit(
            conn, record.payment_id, record.record_key, record.step, status, record.detail,
            record.refund_id, record.status,
        )  # fmt: skip
        return PaymentStatus(status)


async def _flag_conflict(
    conn: asyncpg.Connection,
    r: RefundReservation,
    payment: asyncpg.Record,
    amount: int,
    conflict: str,
) -> None:
    """An observed refund the ledger would not have allowed: recorded all the same, and left to an
    operator (the payment in `needs_review`, a reconciliation flag with why)."""
    detail = (
        f"{r.gateway_refund_id} refunded {format_amount(amount, payment['currency'])} at the"
        f" gateway while the ledger says: {conflict}"
    )
    await conn.execute(
        """
        INSERT INTO reconciliation_flags (run_id, object_kind, object_id, payment_id,
                                          ledger_status, gateway_status, detail)
        VALUES ('observed_refund', 'refund', $1, $2, $3, 'refunded', $4)
        ON CONFLICT (object_kind, object_id, ledger_status, gateway_status) DO NOTHING
        """,
        r.refund_id, r.payment_id, payment["status"], detail,
    )  # fmt: skip
    await conn.execute(
        "UPDATE payments SET status = 'needs_review', updated_at = now() WHERE payment_id = $1",
        r.payment_id,
    )
    await _audit(
        conn, r.payment_id, f"{r.refund_id}:conflict", "needs_review", "needs_review", detail,
        r.refund_id, RefundStatus.PENDING,
    )  # fmt: skip


async def _record_unrecorded_capture(
    conn: asyncpg.Connection, r: RefundReservation, payment: asyncpg.Record
) -> asyncpg.Record:
    """A capture the ledger never recorded — a checkout compensating one it could not record, or a
    late payment of a checkout that had ended without money — is recorded first, so the refund
    reverses money the ledger knows about."""
    missing = r.capture_to_record - payment["amount_captured"]
    late = r.mode is RefundMode.LATE_PAYMENT
    key = f"{r.refund_id}:capture"
    await conn.executemany(
        """
        INSERT INTO ledger_entries (payment_id, record_key, account, amount, currency)
        VALUES ($1, $2, $3, $4, $5)
        """,
        [
            (r.payment_id, key, f"gateway:{payment['gateway']}", missing, payment["currency"]),
            (r.payment_id, key, "merchant:sales", -missing, payment["currency"]),
        ],
    )
    await _audit(
        conn, r.payment_id, key, "late_payment_captured" if late else "capture_recorded_for_refund",
        PaymentStatus.CAPTURED,
        f"{format_amount(r.capture_to_record, payment['currency'])} captured at the gateway"
        + (f" after the checkout ended {payment['status']}; refunding it" if late else ""),
        None, None,
    )  # fmt: skip
    updated = await conn.fetchrow(
        """
        UPDATE payments SET amount_captured = $2, status = 'captured', updated_at = now(),
            gateway_charge_id = COALESCE($3, gateway_charge_id)
        WHERE payment_id = $1 RETURNING *
        """,
        r.payment_id, r.capture_to_record,
        r.payment_ref.gateway_charge_id if r.payment_ref else None,
    )  # fmt: skip
    assert updated is not None
    return updated


async def _audit(
    conn: asyncpg.Connection,
    payment_id: str,
    record_key: str,
    step: str,
    payment_status: str,
    detail: str,
    refund_id: str | None,
    refund_status: RefundStatus | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO audit_log (payment_id, record_key, step, status, detail, refund_id,
                               refund_status)
        VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (record_key) DO NOTHING
        """,
        payment_id, record_key, step, str(payment_status), detail, refund_id,
        refund_status.value if refund_status else None,
    )  # fmt: skip


def _refused(code: str, detail: str) -> ReservationOutcome:
    return ReservationOutcome(
        accepted=False, refusal_code=code, detail=detail, status=RefundStatus.REFUSED
    )


def _outcome(payment: asyncpg.Record, refund: asyncpg.Record) -> ReservationOutcome:
    return ReservationOutcome(
        accepted=True,
        status=RefundStatus(refund["status"]),
        amount=refund["amount"],
        currency=refund["currency"],
        gateway=Gateway(payment["gateway"]),
        gateway_payment_id=payment["gateway_payment_id"],
        gateway_charge_id=payment["gateway_charge_id"],
        gateway_refund_id=refund["gateway_refund_id"],
    )


async def refund_state(pool: asyncpg.Pool, refund_id: str) -> RefundState | None:
    found = await _refund_states(pool, "r.refund_id = $1", refund_id)
    return found[0] if found else None


async def refunds_of_payment(pool: asyncpg.Pool, payment_id: str) -> list[RefundState]:
    """Every refund of the payment, oldest first, in two queries whatever their number."""
    return await _refund_states(pool, "r.payment_id = $1", payment_id)


async def refunds_by_id(pool: asyncpg.Pool, refund_ids: list[str]) -> dict[str, RefundState]:
    """The refunds named, by id, in two queries whatever their number."""
    found = await _refund_states(pool, "r.refund_id = ANY($1::text[])", refund_ids)
    return {r.refund_id: r for r in found}


async def _refund_states(pool: asyncpg.Pool, condition: str, *args: object) -> list[RefundState]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT r.*, p.status AS payment_status FROM refunds r JOIN payments p USING"
            f" (payment_id) WHERE {condition} ORDER BY r.created_at, r.refund_id",
            *args,
        )
        steps = await conn.fetch(
            "SELECT refund_id, at, step, refund_status, detail FROM audit_log"
            " WHERE refund_id = ANY($1::text[]) ORDER BY id",
            [row["refund_id"] for row in rows],
        )
    timelines: dict[str, list[RefundStep]] = {row["refund_id"]: [] for row in rows}
    for s in steps:
        timelines[s["refund_id"]].append(
            RefundStep(
                at=s["at"],
                step=s["step"],
                status=RefundStatus(s["refund_status"]),
                detail=s["detail"],
            )
        )
    return [
        RefundState(
            refund_id=row["refund_id"],
            workflow_id=row["workflow_id"],
            payment_id=row["payment_id"],
            mode=RefundMode(row["mode"]),
            status=RefundStatus(row["status"]),
            reason=RefundReason(row["reason"]),
            note=row["note"],
            amount=row["amount"],
            currency=row["currency"],
            gateway=Gateway(row["gateway"]),
            gateway_refund_id=row["gateway_refund_id"],
            failure_reason=row["failure_reason"],
            payment_status=PaymentStatus(row["payment_status"]),
            history=timelines[row["refund_id"]],
        )
        for row in rows
    ]
