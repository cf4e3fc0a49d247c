"""Reading a signed but untrusted JSON payload: a value of an unexpected shape reads as absent,
so a parser decides "no action" instead of failing on it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

MAX_ID_LENGTH = 255
MAX_TEXT_LENGTH = 500


def obj(value: Any) -> JSON:
    """The value if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def ident(value: Any) -> str | None:
    """A gateway id: a non-empty string of printable characters and bounded length."""
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and value.isprintable():
        return value
    return None


def id_of(value: Any) -> str | None:
    """An expandable field: the id itself, or the expanded object's id."""
    return ident(obj(value).get("id")) if isinstance(value, dict) else ident(value)


def minor_units(value: Any) -> int | None:
    """An amount: a non-negative integer (a bool is not one)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def currency(value: Any) -> str | None:
    """An ISO 4217 code, upper-cased."""
    if isinstance(value, str) and len(value) == 3 and value.isalpha():
        return value.upper()
    return None


def text(value: Any) -> str | None:
    """Free text (an error message): strings only, cut to a bounded length."""
    return value[:MAX_TEXT_LENGTH] if isinstance(value, str) and value else None


def timestamp(value: Any) -> datetime | None:
    """Unix seconds; anything else (or out of range) reads as unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None


def json_object(body: bytes) -> tuple[str, JSON] | None:
    """The body as text and as a JSON object; None when it is not UTF-8 JSON holding an object
    (deep nesting included, which Python's parser refuses with a RecursionError)."""
    try:
        text_body = body.decode("utf-8")
        parsed = json.loads(text_body)
    except (ValueError, RecursionError):
        return None
    return (text_body, parsed) if isinstance(parsed, dict) else None
