"""Query parameters every history list shares: time ranges and the checks on them, so a bad
filter is a 422 `invalid_filter` with the same words everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator, AwareDatetime

from api.auth import Caller
from api.problems import Problem
from domain.history import TimeRange


def _in_utc(moment: datetime) -> datetime:
    """The instant in UTC; one that UTC cannot hold (year 1 at +14:00) is invalid, not a 500."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]
Since = Annotated[Instant | None, Query(description="inclusive; ISO 8601 with a UTC offset")]
Until = Annotated[Instant | None, Query(description="exclusive; ISO 8601 with a UTC offset")]
CurrencyFilter = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")]
NO_NUL = r"^[^\x00]*$"
"""For a free-text filter: PostgreSQL text cannot hold a NUL, so one is a 422, not a 500."""
IdentifierFilter = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="exactly")
]
TextFilter = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_.:-]{3,64}$",
        description="the start of an order id, a gateway payment id or a gateway charge id",
    ),
]
AmountFilter = Annotated[
    int | None, Query(ge=0, le=2**63 - 1, description="minor units, inclusive")
]
PaymentIdFilter = Annotated[str | None, Query(pattern=r"^pay_[0-9a-f]{24}$")]


def time_range(name: str, since: datetime | None, until: datetime | None) -> TimeRange:
    if since is not None and until is not None and since >= until:
        raise Problem(
            422, "invalid_filter", f"{name}_from must be before {name}_to", parameter=name
        )
    return TimeRange(since, until)


def visible_customer(caller: Caller, asked: str | None) -> str | None:
    """The customer filter a list applies: the caller's own customer when it is one (forced, the
    token decides), else what was asked. A customer asking for another's rows is answered with
    `NothingVisible`: an empty page, as if they did not exist."""
    scope = caller.list_scope()
    if scope is None:
        return asked
    if asked is not None and asked != scope:
        raise NothingVisible
    return scope


class NothingVisible(Exception):
    """The filters leave this caller nothing it may see."""
