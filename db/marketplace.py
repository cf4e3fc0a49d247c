"""Marketplace money in the ledger: sellers, each checkout's splits and payout, its transfers
(held, released, reversed) with balanced postings, and the sellers' balances and payouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from temporalio.exceptions import ApplicationError

from domain.checkout import Gateway
from domain.marketplace import (
    Payout,
    PayoutState,
    PayoutTransfer,
    TransferStatus,
    allocate,
)
from domain.money import format_amount
from domain.splits import Splits

SALES = "merchant:sales"
FEES = "platform:fees"


def escrow_account(seller_id: str) -> str:
    """Held for the seller: the platform owes it, not yet paid to the seller's account."""
    return f"escrow:{seller_id}"


def seller_account(seller_id: str) -> str:
    """Paid to the seller's gateway account (transfers less their reversals)."""
    return f"seller:{seller_id}"


# Sellers


@dataclass(frozen=True)
class Seller:
    seller_id: str
    gateway: Gateway
    gateway_account_id: str
    name: str
    onboarding_state: str
    created_at: datetime


async def register_seller(
    pool: asyncpg.Pool, seller_id: str, gateway: Gateway, account_id: str, name: str, state: str
) -> tuple[Seller | None, bool]:
    """The seller, and whether this call created it (a second call with the same id returns
    the first registration unchanged); None when another seller has this gateway account."""
    row = await pool.fetchrow(
        """
        INSERT INTO sellers (seller_id, gateway, gateway_account_id, name, onboarding_state)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING *
        """,
        seller_id, gateway.value, account_id, name, state,
    )  # fmt: skip
    if row is not None:
        return _seller(row), True
    return await seller(pool, seller_id), False


async def record_onboarding_state(
    conn: asyncpg.Connection, gateway: Gateway, gateway_account_id: str, state: str
) -> str | None:
    """The gateway says the account's onboarding changed: the seller it belongs to (None when
    no seller has that account). Not money state: a refused transfer still holds the payout."""
    seller_id: str | None = await conn.fetchval(
        """
        WITH updated AS (
            UPDATE sellers SET onboarding_state = $3, updated_at = now()
            WHERE gateway = $1 AND gateway_account_id = $2 AND onboarding_state <> $3
            RETURNING seller_id)
        SELECT seller_id FROM updated
        UNION ALL
        SELECT seller_id FROM sellers WHERE gateway = $1 AND gateway_account_id = $2
        LIMIT 1
        """,
        gateway.value, gateway_account_id, state,
    )  # fmt: skip
    return seller_id


async def seller(pool: asyncpg.Pool, seller_id: str) -> Seller | None:
    row = await pool.fetchrow("SELECT * FROM sellers WHERE seller_id = $1", seller_id)
    return _seller(row) if row else None


async def sellers(pool: asyncpg.Pool, seller_ids: list[str]) -> dict[str, Seller]:
    rows = await pool.fetch("SELECT * FROM sellers WHERE seller_id = ANY($1)", seller_ids)
    return {r["seller_id"]: _seller(r) for r in rows}


def _seller(row: asyncpg.Record) -> Seller:
    return Seller(
        row["seller_id"], Gateway(row["gateway"]), row["gateway_account_id"], row["name"],
        row["onboarding_state"], row["created_at"],
    )  # fmt: skip


# A checkout's splits, written with its payment row


async def record_payout_plan(
    conn: asyncpg.Connection, payment_id: str, splits: Splits, release_at: datetime | None
) -> None:
    inserted = await conn.fetchval(
        """
        INSERT INTO payout_plans (payment_id, platform_fee, release_at) VALUES ($1, $2, $3)
        ON CONFLICT (payment_id) DO NOTHING RETURNING true
        """,
        payment_id, splits.platform_fee, release_at,
    )  # fmt: skip
    if inserted:
        await conn.executemany(
            "INSERT INTO payout_shares (payment_id, position, seller_id, kind, amount)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (payment_id, i, s.seller_id, s.kind.value, s.amount)
                for i, s in enumerate(splits.shares)
            ],
        )


async def has_payout(pool: asyncpg.Pool, payment_id: str) -> bool:
    return bool(
        await pool.fetchval("SELECT true FROM payout_plans WHERE payment_id = $1", payment_id)
    )


# The payout


async def open_payout(pool: asyncpg.Pool, payment_id: str) -> Payout:
    """Once per checkout, after its capture: split what was captured (the splits scaled to it,
    largest remainder) into held transfers and the platform's fee, posted from sales to each
    seller's escrow and to the fees. Then, and on every later call, the payout as it stands."""
    async with pool.acquire() as conn, conn.transaction():
        plan = await conn.fetchrow(
            "SELECT * FROM payout_plans WHERE payment_id = $1 FOR UPDATE", payment_id
        )
        if plan is None:
            raise ApplicationError(
                f"no splits for {payment_id}", type="no_payout", non_retryable=True
            )
        if not plan["opened"]:
            payment = await conn.fetchrow(
                "SELECT * FROM payments WHERE payment_id = $1", payment_id
            )
            captured = payment["amount_captured"]
            if captured <= 0:
                raise ApplicationError(f"{payment_id} is not captured yet", type="not_captured")
            shares = await conn.fetch(
                "SELECT * FROM payout_shares WHERE payment_id = $1 ORDER BY position", payment_id
            )
            parts = allocate(captured, [s["amount"] for s in shares] + [plan["platform_fee"]])
            currency = payment["currency"]
            gateway = payment["gateway"]
            postings: list[tuple[str, int]] = [(SALES, captured)]
            for share, amount in zip(shares, parts, strict=False):
                transfer_id = f"tr_{payment_id}_{share['position']}"
                await conn.execute(
                    """
                    INSERT INTO transfers (transfer_id, payment_id, seller_id, gateway, amount,
                                           currency, status, idempotency_key)
                    VALUES ($1, $2, $3, $4, $5, $6, 'held', $7)
                    """,
                    transfer_id, payment_id, share["seller_id"], gateway, amount, currency,
                    f"{transfer_id}:transfer",
                )  # fmt: skip
                postings.append((escrow_account(share["seller_id"]), -amount))
            postings.append((FEES, -parts[-1]))
            await _post(conn, payment_id, f"{payment_id}:payout_opened", postings, currency)
            await conn.execute(
                "UPDATE payout_plans SET opened = true, fee = $2 WHERE payment_id = $1",
                payment_id,
                parts[-1],
            )
            await _audit(
                conn, payment_id, "payout_opened",
                f"{format_amount(captured - parts[-1], currency)} held for"
                f" {len(shares)} seller share(s), fee {format_amount(parts[-1], currency)}",
            )  # fmt: skip
        return await _payout(conn, payment_id)


async def load_payout(pool: asyncpg.Pool, payment_id: str) -> Payout | None:
    async with pool.acquire() as conn:
        opened = await conn.fetchval(
            "SELECT opened FROM payout_plans WHERE payment_id = $1", payment_id
        )
        return await _payout(conn, payment_id) if opened else None


async def _payout(conn: asyncpg.Connection, payment_id: str) -> Payout:
    row = await conn.fetchrow(
        """
        SELECT p.*, pay.gateway, pay.currency, pay.gateway_payment_id, pay.gateway_charge_id
        FROM payout_plans p JOIN payments pay USING (payment_id) WHERE p.payment_id = $1
        """,
        payment_id,
    )
    transfers = await conn.fetch(
        """
        SELECT t.*, s.gateway_account_id FROM transfers t JOIN sellers s USING (seller_id)
        WHERE t.payment_id = $1 ORDER BY t.transfer_id
        """,
        payment_id,
    )
    return Payout(
        payment_id=payment_id,
        gateway=Gateway(row["gateway"]),
        currency=row["currency"],
        gateway_payment_id=row["gateway_payment_id"],
        gateway_charge_id=row["gateway_charge_id"],
        release_at=row["release_at"],
        platform_fee=row["fee"],
        fee_reversed=row["fee_reversed"],
        state=PayoutState(row["state"]),
        hold_reason=row["hold_reason"],
        clawed_back=row["clawed_back"],
        transfers=[
            PayoutTransfer(
                transfer_id=t["transfer_id"],
                seller_id=t["seller_id"],
                gateway_account_id=t["gateway_account_id"],
                amount=t["amount"],
                reversed=t["amount_reversed"],
                status=TransferStatus(t["status"]),
                gateway_transfer_id=t["gateway_transfer_id"],
            )
            for t in transfers
        ],
    )


async def payment_of_dispute(pool: asyncpg.Pool, dispute_id: str) -> str | None:
    payment_id: str | None = await pool.fetchval(
        "SELECT payment_id FROM disputes WHERE dispute_id = $1", dispute_id
    )
    return payment_id


async def clawback_total(pool: asyncpg.Pool, payment_id: str) -> int:
    """Customer money taken back: settled refunds plus what lost disputes withdrew."""
    total: int = await pool.fetchval(
        """
        SELECT p.amount_refunded + COALESCE((SELECT sum(d.amount_withdrawn) FROM disputes d
                                             WHERE d.payment_id = p.payment_id
                                               AND d.status = 'lost'), 0)
        FROM payments p WHERE p.payment_id = $1
        """,
        payment_id,
    )
    return total


async def record_release(
    pool: asyncpg.Pool, transfer_id: str, gateway_transfer_id: str | None, amount: int
) -> None:
    """A transfer paid to its seller (`amount`: what it still held); applied once."""
    async with pool.acquire() as conn, conn.transaction():
        t = await conn.fetchrow(
            "SELECT * FROM transfers WHERE transfer_id = $1 FOR UPDATE", transfer_id
        )
        if t["status"] != TransferStatus.HELD:
            return
        if amount != t["amount"] - t["amount_reversed"]:
            raise ApplicationError(
                f"{transfer_id}: released {amount}, held {t['amount'] - t['amount_reversed']}",
                type="release_mismatch", non_retryable=True,
            )  # fmt: skip
        await conn.execute(
            """
            UPDATE transfers SET status = 'released', gateway_transfer_id = $2,
                amount_released = $3, released_at = now(), updated_at = now()
            WHERE transfer_id = $1
            """,
            transfer_id, gateway_transfer_id, amount,
        )  # fmt: skip
        if amount:
            seller_id = t["seller_id"]
            await _post(
                conn, t["payment_id"], f"{transfer_id}:released",
                [(escrow_account(seller_id), amount), (seller_account(seller_id), -amount)],
                t["currency"],
            )  # fmt: skip
        await _audit(
            conn, t["payment_id"], "payout_released",
            f"{format_amount(amount, t['currency'])} to seller {t['seller_id']}"
            f" ({gateway_transfer_id or 'nothing left to transfer'})",
            record_key=f"{transfer_id}:released",
        )  # fmt: skip


async def record_held_transfer(
    pool: asyncpg.Pool, transfer_id: str, gateway_transfer_id: str
) -> None:
    """A transfer the gateway holds for the seller (Razorpay Route): still in escrow."""
    await pool.execute(
        "UPDATE transfers SET gateway_transfer_id = $2, updated_at = now()"
        " WHERE transfer_id = $1 AND gateway_transfer_id IS NULL",
        transfer_id,
        gateway_transfer_id,
    )


async def record_reversal(
    pool: asyncpg.Pool, record_key: str, transfer_id: str, amount: int,
    gateway_reversal_id: str | None,
) -> None:  # fmt: skip
    """Part of a transfer given back: from the seller's escrow while held, from the seller's
    account (a gateway reversal) once released; applied once by its record key."""
    async with pool.acquire() as conn, conn.transaction():
        t = await conn.fetchrow(
            "SELECT * FROM transfers WHERE transfer_id = $1 FOR UPDATE", transfer_id
        )
        inserted = await conn.fetchval(
            """
            INSERT INTO transfer_reversals (record_key, transfer_id, amount, gateway_reversal_id)
            VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true
            """,
            record_key, transfer_id, amount, gateway_reversal_id,
        )  # fmt: skip
        if not inserted:
            return
        reversed_ = t["amount_reversed"] + amount
        status = t["status"]
        account = (
            seller_account(t["seller_id"])
            if status == TransferStatus.RELEASED
            else escrow_account(t["seller_id"])
        )
        if reversed_ == t["amount"]:
            status = TransferStatus.REVERSED
        await conn.execute(
            "UPDATE transfers SET amount_reversed = $2, status = $3, updated_at = now()"
            " WHERE transfer_id = $1",
            transfer_id, reversed_, status,
        )  # fmt: skip
        await _post(
            conn, t["payment_id"], record_key, [(account, amount), (SALES, -amount)],
            t["currency"],
        )  # fmt: skip
        await _audit(
            conn, t["payment_id"], "payout_reversed",
            f"{format_amount(amount, t['currency'])} back from seller {t['seller_id']}"
            + (f" ({gateway_reversal_id})" if gateway_reversal_id else " (held)"),
            record_key=record_key,
        )  # fmt: skip


async def record_clawback(pool: asyncpg.Pool, payment_id: str, key: str, fee: int, to: int) -> None:
    """The platform fee's share of a clawback, and the clawback reached; applied once."""
    async with pool.acquire() as conn, conn.transaction():
        plan = await conn.fetchrow(
            "SELECT * FROM payout_plans p JOIN payments USING (payment_id)"
            " WHERE payment_id = $1 FOR UPDATE OF p",
            payment_id,
        )
        if plan["clawed_back"] >= to:
            return
        await conn.execute(
            "UPDATE payout_plans SET fee_reversed = fee_reversed + $2, clawed_back = $3"
            " WHERE payment_id = $1",
            payment_id, fee, to,
        )  # fmt: skip
        if fee:
            await _post(conn, payment_id, f"{key}:fee", [(FEES, fee), (SALES, -fee)],
                        plan["currency"])  # fmt: skip


async def decide_payout(
    pool: asyncpg.Pool, payment_id: str, state: PayoutState, reason: str, caller: str
) -> None:
    """An operator's release or hold (or the release date's release, caller `schedule`)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "UPDATE payout_plans SET state = $2, hold_reason = $3 WHERE payment_id = $1",
            payment_id, state.value, reason if state is PayoutState.ON_HOLD else None,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO payout_decisions (payment_id, decision, reason, caller)"
            " VALUES ($1, $2, $3, $4)",
            payment_id, "hold" if state is PayoutState.ON_HOLD else "release", reason, caller,
        )  # fmt: skip


# Reads for the API


@dataclass(frozen=True)
class Balance:
    currency: str
    held: int
    paid: int


async def seller_balances(pool: asyncpg.Pool, seller_id: str) -> list[Balance]:
    """From the ledger: held in escrow and paid to the seller's account, per currency."""
    rows = await pool.fetch(
        """
        SELECT currency,
               -COALESCE(sum(amount) FILTER (WHERE account = $1), 0) AS held,
               -COALESCE(sum(amount) FILTER (WHERE account = $2), 0) AS paid
        FROM ledger_entries WHERE account IN ($1, $2) GROUP BY currency ORDER BY currency
        """,
        escrow_account(seller_id), seller_account(seller_id),
    )  # fmt: skip
    return [Balance(r["currency"], r["held"], r["paid"]) for r in rows]


@dataclass(frozen=True)
class SellerPayout:
    transfer_id: str
    payment_id: str
    amount: int
    amount_released: int
    amount_reversed: int
    currency: str
    status: TransferStatus
    gateway_transfer_id: str | None
    release_at: datetime | None
    released_at: datetime | None
    created_at: datetime


async def seller_payouts(pool: asyncpg.Pool, seller_id: str, limit: int) -> list[SellerPayout]:
    rows = await pool.fetch(
        """
        SELECT t.*, p.release_at FROM transfers t JOIN payout_plans p USING (payment_id)
        WHERE t.seller_id = $1 ORDER BY t.created_at DESC, t.transfer_id LIMIT $2
        """,
        seller_id, limit,
    )  # fmt: skip
    return [
        SellerPayout(
            r["transfer_id"],
            r["payment_id"],
            r["amount"],
            r["amount_released"],
            r["amount_reversed"],
            r["currency"],
            TransferStatus(r["status"]),
            r["gateway_transfer_id"],
            r["release_at"],
            r["released_at"],
            r["created_at"],
        )
        for r in rows
    ]


async def _post(
    conn: asyncpg.Connection, payment_id: str, record_key: str, lines: list[tuple[str, int]],
    currency: str,
) -> None:  # fmt: skip
    if sum(amount for _, amount in lines) != 0:
        raise ApplicationError(
            f"unbalanced posting {record_key}", type="unbalanced_posting", non_retryable=True
        )
    await conn.executemany(
        "INSERT INTO ledger_entries (payment_id, record_key, account, amount, currency)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(payment_id, record_key, account, amount, currency) for account, amount in lines],
    )


async def _audit(
    conn: asyncpg.Connection, payment_id: str, step: str, detail: str,
    record_key: str | None = None,
) -> None:  # fmt: skip
    status = await conn.fetchval("SELECT status FROM payments WHERE payment_id = $1", payment_id)
    await conn.execute(
        "INSERT INTO audit_log (payment_id, record_key, step, status, detail)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (record_key) DO NOTHING",
        payment_id, record_key or f"{payment_id}:{step}", step, status, detail,
    )  # fmt: skip
