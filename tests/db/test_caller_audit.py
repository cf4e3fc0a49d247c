"""The caller audit is append-only: rows are added and read, never changed; only the retention
purge removes them, and only rows older than the retention."""

from __future__ import annotations

import asyncpg
import pytest

from db import audit


def entry(n: int, subject: str = "ops-1") -> audit.AuditEntry:
    return audit.AuditEntry(
        action="refund.create", subject=subject, roles=["operator"], request_id=f"req-{n}",
        target_kind="payment", target_id=f"pay_{n}", idempotency_key=f"key-{n:08d}", status=202,
    )  # fmt: skip


async def test_rows_are_appended_and_read_newest_first_by_cursor(pool: asyncpg.Pool) -> None:
    for n in range(5):
        await audit.append(pool, entry(n, subject="ops-1" if n % 2 else "ops-2"))
    first = await audit.read(pool, limit=2)
    assert [r.entry.request_id for r in first] == ["req-4", "req-3"]
    second = await audit.read(pool, limit=2, before_id=first[-1].id)
    assert [r.entry.request_id for r in second] == ["req-2", "req-1"]
    mine = await audit.read(pool, subject="ops-1")
    assert [r.entry.target_id for r in mine] == ["pay_3", "pay_1"]
    assert (await audit.read(pool, target_id="pay_2"))[0].entry == entry(2, subject="ops-2")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE caller_audit SET subject = 'someone-else'",
        "DELETE FROM caller_audit",
        "TRUNCATE caller_audit",
    ],
)
async def test_rows_cannot_be_changed_or_removed(pool: asyncpg.Pool, statement: str) -> None:
    await audit.append(pool, entry(1))
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await pool.execute(statement)
    assert [r.entry.subject for r in await audit.read(pool)] == ["ops-1"]


async def test_the_retention_purge_removes_only_old_rows(pool: asyncpg.Pool) -> None:
    await audit.append(pool, entry(1))
    await audit.append(pool, entry(2))
    async with pool.acquire() as conn, conn.transaction():
        # Ages one row past the retention: the test's own bypass, as the purge's.
        await conn.execute("SET LOCAL payments.audit_purge = 'on'")
        await conn.execute(
            "INSERT INTO caller_audit (at, action, subject, roles, status)"
            " SELECT now() - interval '500 days', action, subject, roles, status"
            " FROM caller_audit WHERE request_id = 'req-1'"
        )
        await conn.execute("DELETE FROM caller_audit WHERE request_id = 'req-1'")
    assert await audit.purge(pool, 400) == 1
    assert [r.entry.request_id for r in await audit.read(pool)] == ["req-2"]
    # Outside the purge, the bypass is off again.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("DELETE FROM caller_audit")
