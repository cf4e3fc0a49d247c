"""The asyncpg pool, and creating the database a URL names."""

from __future__ import annotations

import asyncpg

DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)
"""What PostgreSQL being away (down, restarting, refusing or out of connections) raises; an
error in a statement itself is none of these."""


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=size)
    assert pool is not None
    return pool


async def ensure_database(database_url: str) -> None:
    """Create the database named in the URL if the server does not have it yet."""
    try:
        conn = await asyncpg.connect(database_url)
    except asyncpg.InvalidCatalogNameError:
        address, _, query = database_url.partition("?")
        base, _, name = address.rpartition("/")
        admin = await asyncpg.connect(f"{base}/postgres" + (f"?{query}" if query else ""))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await conn.close()
