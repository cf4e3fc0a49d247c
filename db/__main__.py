"""`python -m db migrate`: create the database if needed and apply pending migrations (the deploy
step before the API and workers start). `python -m db status`: list pending migrations."""

from __future__ import annotations

import argparse
import asyncio
import sys

from db.migrate import MigrationError, apply_migrations, pending_migrations
from db.pool import create_pool, ensure_database
from settings import get_settings


async def _run(command: str) -> int:
    url = get_settings().database_url
    if command == "migrate":
        await ensure_database(url)
    pool = await create_pool(url, 1)
    try:
        if command == "migrate":
            applied = await apply_migrations(pool)
            print("applied: " + (", ".join(applied) or "nothing, the database is up to date"))
        else:
            pending = await pending_migrations(pool)
            print("pending: " + (", ".join(pending) or "none"))
    except MigrationError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__)
    parser.add_argument("command", choices=["migrate", "status"])
    args = parser.parse_args()
    sys.exit(asyncio.run(_run(args.command)))


if __name__ == "__main__":
    main()
