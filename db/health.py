"""Gateway health in the ledger: the breaker every replica shares (each change decided by
domain/health.py under the row's lock), operators' overrides, and the downtimes a gateway
announced that make auto routing avoid it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import asyncpg

from domain.health import (
    BreakerConfig,
    GatewayHealth,
    Override,
    after_failure,
    after_success,
    needs_success_write,
)

_COLUMNS = (
    "gateway, state, failures, window_started_at, opened_at, last_failure, override, override_by,"
    " override_reason, override_at"
)
# Downtimes under way that stop card payments, the only method our checkouts take; `scheduled`
# ones have not begun, `cancelled` ones never will (Razorpay's downtime entity:
# https://razorpay.com/docs/api/payments/downtime/ — older pages spell the method `cards`).
_CARD_DOWNTIME = "status = 'started' AND method IN ('card', 'cards')"


def _health(row: asyncpg.Record) -> GatewayHealth:
    return GatewayHealth(**dict(row))


async def all_health(pool: asyncpg.Pool) -> dict[str, GatewayHealth]:
    rows = await pool.fetch(f"SELECT {_COLUMNS} FROM gateway_health ORDER BY gateway")
    return {r["gateway"]: _health(r) for r in rows}


async def announced_down(pool: asyncpg.Pool) -> frozenset[str]:
    """Gateways with an unresolved downtime of card payments (Razorpay `payment.downtime.*`)."""
    rows = await pool.fetch(
        f"SELECT DISTINCT gateway FROM gateway_downtimes WHERE {_CARD_DOWNTIME}"
    )
    return frozenset(r["gateway"] for r in rows)


async def _change(
    pool: asyncpg.Pool, gateway: str, change: Callable[[GatewayHealth], GatewayHealth]
) -> GatewayHealth:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO gateway_health (gateway) VALUES ($1) ON CONFLICT DO NOTHING", gateway
        )
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM gateway_health WHERE gateway = $1 FOR UPDATE", gateway
        )
        before = _health(row)
        after = change(before)
        if after != before:
            await conn.execute(
                """
                UPDATE gateway_health SET state = $2, failures = $3, window_started_at = $4,
                    opened_at = $5, last_failure = $6, updated_at = now()
                WHERE gateway = $1
                """,
                gateway, after.state.value, after.failures, after.window_started_at,
                after.opened_at, after.last_failure,
            )  # fmt: skip
        return after


async def record_failure(
    pool: asyncpg.Pool, gateway: str, now: datetime, config: BreakerConfig, reason: str
) -> GatewayHealth:
    """A call of ours found the gateway unavailable (an error the adapter classified so)."""
    return await _change(pool, gateway, lambda h: after_failure(h, now, config, reason[:300]))


async def record_success(
    pool: asyncpg.Pool, gateway: str, now: datetime, config: BreakerConfig
) -> GatewayHealth | None:
    """A call went through. A healthy gateway's success is one read and no write."""
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM gateway_health WHERE gateway = $1", gateway)
    if row is not None and not needs_success_write(_health(row)):
        return None
    return await _change(pool, gateway, lambda h: after_success(h, now, config))


async def set_override(
    pool: asyncpg.Pool, gateway: str, override: Override, caller: str, reason: str
) -> GatewayHealth:
    """An operator forces the gateway down or up, or hands it back to the breaker (`auto`)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""
            INSERT INTO gateway_health (gateway, override, override_by, override_reason,
                                        override_at)
            VALUES ($1, $2, $3, $4, now())
            ON CONFLICT (gateway) DO UPDATE SET override = EXCLUDED.override,
                override_by = EXCLUDED.override_by, override_reason = EXCLUDED.override_reason,
                override_at = EXCLUDED.override_at, updated_at = now()
            RETURNING {_COLUMNS}
            """,
            gateway, override.value, caller, reason,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO gateway_overrides (gateway, override, set_by, reason)"
            " VALUES ($1, $2, $3, $4)",
            gateway, override.value, caller, reason,
        )  # fmt: skip
    return _health(row)
