"""The migration runner: an explicit step that records a checksum per file and refuses history
that changed."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from db.migrate import MigrationError, apply_migrations, migrations, pending_migrations


async def test_migrate_applies_every_file_once_with_its_checksum(empty_pool: asyncpg.Pool) -> None:
    pool = empty_pool
    known = migrations()
    assert await pending_migrations(pool) == [m.version for m in known]

    assert await apply_migrations(pool) == [m.version for m in known]
    assert await apply_migrations(pool) == []
    assert await pending_migrations(pool) == []
    recorded = {
        r["version"]: r["checksum"] for r in await pool.fetch("SELECT * FROM schema_migrations")
    }
    assert recorded == {m.version: m.checksum for m in known}


async def test_a_migration_changed_after_it_was_applied_is_refused(
    empty_pool: asyncpg.Pool,
) -> None:
    pool = empty_pool
    await apply_migrations(pool)
    first = migrations()[0].version
    await pool.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = $1", first)

    with pytest.raises(MigrationError, match=first):
        await pending_migrations(pool)
    with pytest.raises(MigrationError, match=first):
        await apply_migrations(pool)


async def test_history_recorded_before_checksums_is_adopted(empty_pool: asyncpg.Pool) -> None:
    pool = empty_pool
    await apply_migrations(pool)
    await pool.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")

    assert await pending_migrations(pool) == []
    assert await apply_migrations(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM schema_migrations WHERE checksum IS NULL") == 0


def test_the_worker_refuses_to_start_on_a_database_that_lacks_migrations(database_url: str) -> None:
    env = {**os.environ, "ENVIRONMENT": "development", "DATABASE_URL": database_url,
           "TEMPORAL_ADDRESS": "127.0.0.1:1"}  # fmt: skip
    run = subprocess.run(
        [sys.executable, "worker.py"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert "python -m db migrate" in run.stderr


def test_python_m_db_migrate_brings_a_new_database_up_to_date(database_url: str) -> None:
    env = {**os.environ, "ENVIRONMENT": "development", "DATABASE_URL": database_url}
    migrate = subprocess.run(
        [sys.executable, "-m", "db", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr
    status = subprocess.run(
        [sys.executable, "-m", "db", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.stdout.strip() == "pending: none"
