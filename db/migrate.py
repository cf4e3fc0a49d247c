"""The migration runner: ordered SQL files in `db/migrations`, each applied once in its own
transaction under an advisory lock, with the file's checksum recorded. An applied file that has
changed since is refused: a migration is history, and a fix is a new file. Run it as an explicit
step (`python -m db migrate`) before the API and workers start; they only check for pending ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

# Any constant works; it only has to be the same for every process that migrates this database.
_MIGRATION_LOCK = 7_311_042


class MigrationError(Exception):
    """The database's history and the code's migrations disagree."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    files = resources.files("db.migrations").iterdir()
    return sorted(
        (Migration(f.name, f.read_text()) for f in files if f.name.endswith(".sql")),
        key=lambda m: m.version,
    )


async def _applied(conn: asyncpg.Connection) -> dict[str, str | None]:
    try:
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    except asyncpg.UndefinedTableError:
        return {}
    except asyncpg.UndefinedColumnError:  # recorded before checksums were
        rows = await conn.fetch("SELECT version, NULL AS checksum FROM schema_migrations")
    return {r["version"]: r["checksum"] for r in rows}


def _check(known: list[Migration], applied: dict[str, str | None]) -> None:
    for migration in known:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationError(
                f"migration {migration.version} was changed after it was applied; put the change"
                " in a new migration file"
            )


async def pending_migrations(pool: asyncpg.Pool) -> list[str]:
    """Migrations the code has that the database has not applied (for readiness and start-up);
    raises MigrationError when an applied one has changed."""
    known = migrations()
    async with pool.acquire() as conn:
        applied = await _applied(conn)
    _check(known, applied)
    return [m.version for m in known if m.version not in applied]


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply every migration not yet applied; safe when two deploy jobs run at once."""
    known = migrations()
    done: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(
                "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text"
            )
            applied = await _applied(conn)
            _check(known, applied)
            for migration in known:
                if migration.version in applied:
                    if applied[migration.version] is None:  # first run with checksums
                        await conn.execute(
                            "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                            migration.version,
                            migration.checksum,
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                        migration.version,
                        migration.checksum,
                    )
                done.append(migration.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return done
