"""Payment history: the lists of payments, refunds and disputes, newest first, one page at a time
by keyset (created_at, id) so a page costs the same wherever it starts. Each list is one
set-based query whose conditions are only those the caller gave, so the planner picks the index
that fits (migration 030)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from db.disputes import disputes_by_id
from db.refunds import refunds_by_id
from domain.dispute import DisputeState
from domain.history import (
    DisputeFilter,
    PaymentFilter,
    PaymentSummary,
    Position,
    RefundFilter,
    TimeRange,
)
from domain.refund import RefundState


@dataclass
class _Where:
    """Conditions and their parameters, numbered as they are added."""

    conditions: list[str] = field(default_factory=list)
    args: list[object] = field(default_factory=list)

    def add(self, sql: str, *values: object) -> None:
        """`sql` names its values {0}, {1}, … in the order given."""
        first = len(self.args) + 1
        self.conditions.append(sql.format(*(f"${first + i}" for i in range(len(values)))))
        self.args.extend(values)

    def equal(self, column: str, value: object | None) -> None:
        if value is not None:
            self.add(f"{column} = {{0}}", value)

    def any_of(self, column: str, values: Sequence[str]) -> None:
        if len(values) == 1:  # as an equality, the (column, created_at) index gives the order
            self.add(f"{column} = {{0}}", str(values[0]))
        elif values:
            self.add(f"{column} = ANY({{0}}::text[])", [str(v) for v in values])

    def within(self, column: str, span: TimeRange) -> None:
        if span.since is not None:
            self.add(f"{column} >= {{0}}", span.since)
        if span.until is not None:
            self.add(f"{column} < {{0}}", span.until)

    def before(self, created_at: str, id_column: str, after: Position | None) -> None:
        if after is not None:
            self.add(f"({created_at}, {id_column}) < ({{0}}, {{1}})", after.created_at, after.id)

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "true"

    def limit(self, size: int) -> str:
        """The LIMIT clause: one row more than the page, to know whether another page follows."""
        self.args.append(size + 1)
        return f"LIMIT ${len(self.args)}"


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def list_payments(
    pool: asyncpg.Pool, found: PaymentFilter, after: Position | None, size: int
) -> list[tuple[Position, PaymentSummary]]:
    """Up to `size` + 1 payments matching `found`, newest first, older than `after`."""
    where = _Where()
    where.equal("customer_id", found.customer_id)
    where.equal("order_id", found.order_id)
    where.any_of("status", found.statuses)
    where.equal("gateway", found.gateway)
    where.equal("currency", found.currency)
    if found.amount_min is not None:
        where.add("amount >= {0}", found.amount_min)
    if found.amount_max is not None:
        where.add("amount <= {0}", found.amount_max)
    where.within("created_at", found.created)
    where.within("updated_at", found.updated)
    if found.text is not None:
        where.add(
            "(order_id LIKE {0} OR gateway_payment_id LIKE {0} OR gateway_charge_id LIKE {0})",
            _like_prefix(found.text),
        )
    where.before("created_at", "payment_id", after)
    limit = where.limit(size)
    rows = await pool.fetch(
        f"""
        SELECT payment_id, order_id, attempt, customer_id, gateway, status, amount, currency,
               amount_captured, amount_refunded, disputed, gateway_payment_id, gateway_charge_id,
               created_at, updated_at, left_for
        FROM payments WHERE {where.sql()}
        ORDER BY created_at DESC, payment_id DESC {limit}
        """,
        *where.args,
    )
    listed = []
    for r in rows:
        row = dict(r)
        row["checkout_id"] = row.pop("payment_id")
        listed.append(
            (Position(r["created_at"], r["payment_id"]), PaymentSummary.model_validate(row))
        )
    return listed


async def list_refunds(
    pool: asyncpg.Pool, found: RefundFilter, after: Position | None, size: int
) -> list[tuple[Position, RefundState]]:
    """Up to `size` + 1 refunds matching `found`, newest first, older than `after`."""
    where = _Where()
    if found.customer_id is not None:
        where.add(
            "r.payment_id IN (SELECT payment_id FROM payments WHERE customer_id = {0})",
            found.customer_id,
        )
    where.equal("r.payment_id", found.payment_id)
    where.any_of("r.status", found.statuses)
    where.equal("r.gateway", found.gateway)
    where.equal("r.currency", found.currency)
    where.within("r.created_at", found.created)
    where.before("r.created_at", "r.refund_id", after)
    limit = where.limit(size)
    rows = await pool.fetch(
        f"SELECT r.refund_id, r.created_at FROM refunds r WHERE {where.sql()}"
        f" ORDER BY r.created_at DESC, r.refund_id DESC {limit}",
        *where.args,
    )
    states = await refunds_by_id(pool, [row["refund_id"] for row in rows])
    return [
        (Position(row["created_at"], row["refund_id"]), states[row["refund_id"]]) for row in rows
    ]


async def list_disputes(
    pool: asyncpg.Pool, found: DisputeFilter, after: Position | None, size: int
) -> list[tuple[Position, DisputeState]]:
    """Up to `size` + 1 disputes matching `found`, newest first, older than `after`."""
    where = _Where()
    where.equal("d.payment_id", found.payment_id)
    where.any_of("d.status", found.statuses)
    where.equal("d.stage", found.stage)
    where.equal("d.gateway", found.gateway)
    where.equal("d.currency", found.currency)
    where.within("d.created_at", found.created)
    where.before("d.created_at", "d.dispute_id", after)
    limit = where.limit(size)
    rows = await pool.fetch(
        f"SELECT d.dispute_id, d.created_at FROM disputes d WHERE {where.sql()}"
        f" ORDER BY d.created_at DESC, d.dispute_id DESC {limit}",
        *where.args,
    )
    states = await disputes_by_id(pool, [row["dispute_id"] for row in rows])
    return [
        (Position(row["created_at"], row["dispute_id"]), states[row["dispute_id"]]) for row in rows
    ]
