"""Opaque cursors for newest-first lists: base64url of the list's name and the last row's
(created_at, id). A cursor only says where to go on from; what a caller may see is decided by the
query each time, so a hand-made cursor can skip rows, never reveal one. Anything that does not
decode to a cursor of this list is a 422 `invalid_cursor`."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from api.problems import Problem
from domain.history import MAX_PAGE_SIZE, Position

Item = TypeVar("Item")

PageSize = Annotated[
    int, Query(ge=1, le=MAX_PAGE_SIZE, description=f"rows per page, at most {MAX_PAGE_SIZE}")
]
Cursor = Annotated[
    str | None,
    Query(max_length=300, description="`next_cursor` of the previous page; omitted: the newest"),
]


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )


def encode_cursor(kind: str, position: Position) -> str:
    raw = json.dumps([kind, position.created_at.isoformat(), position.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> Position | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        named, created_at, row_id = json.loads(raw)
        position = Position(datetime.fromisoformat(created_at).astimezone(UTC), row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError):
        raise _invalid() from None
    if (
        named != kind
        or not isinstance(row_id, str)
        or not re.fullmatch(r"[a-z]{3}_[0-9a-f]{24}", row_id)
        or not created_at.endswith("+00:00")
    ):
        raise _invalid()
    return position


def _invalid() -> Problem:
    return Problem(422, "invalid_cursor", "the cursor is not one this list gave out")


def page_of(kind: str, rows: list[tuple[Position, Item]], size: int) -> Page[Item]:
    """A page from up to `size` + 1 rows: the extra one only says that another page follows."""
    shown = rows[:size]
    more = len(rows) > size
    return Page[Item](
        items=[item for _, item in shown],
        next_cursor=encode_cursor(kind, shown[-1][0]) if more else None,
    )
