"""The asyncpg pool and the migration runner (ordered SQL files, applied once, under a lock)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

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

# Any constant works; it only has to be the same for every process that migrates this database.
_MIGRATION_LOCK = 7_311_042


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=size)
    assert pool is not None
    return pool


def _migration_files() -> list[Traversable]:
    return sorted(
        (f for f in resources.files("db.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )


async def pending_migrations(pool: asyncpg.Pool) -> list[str]:
    """Migrations this code has that the database has not applied (for readiness)."""
    try:
        applied = {r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations")}
    except asyncpg.UndefinedTableError:
        applied = set()
    return [f.name for f in _migration_files() if f.name not in applied]


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply every migration not yet applied; safe when the API and worker start together."""
    files = _migration_files()
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for migration in files:
                if migration.name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)", migration.name
                    )
                applied.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


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
