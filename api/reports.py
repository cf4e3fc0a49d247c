"""Finance reports, for operators and admins: `GET /v1/reports/daily`, per UTC day, gateway and
currency, what was captured, refunded, withdrawn and reinstated by disputes, and the net, from the
ledger's postings; JSON, or CSV for finance (`Accept: text/csv`)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import AUTH_PROBLEMS, Caller, Role, access
from api.context import AppContext, app_context
from api.history import CurrencyFilter
from api.problems import Problem
from db import reports
from domain.checkout import Gateway
from domain.history import MAX_REPORT_DAYS, CurrencyTotals, DailyTotals

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=AUTH_PROBLEMS)
Context = Annotated[AppContext, Depends(app_context)]
Finance = Annotated[Caller, Depends(access(Role.OPERATOR, Role.ADMIN))]

CSV_COLUMNS = list(DailyTotals.model_fields)
AMOUNTS = [
    "captured", "captures", "refunded", "refunds", "disputed_withdrawn", "dispute_withdrawals",
    "disputed_reinstated", "dispute_reinstatements", "net",
]  # fmt: skip


class DailyReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    days: list[DailyTotals]
    totals: list[CurrencyTotals]
    """One line per currency: money in different currencies is never added up."""


PROBLEMS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV (one line per day, gateway and currency) for Accept: text/csv",
    },
    422: {"description": "the range is not valid (`invalid_filter`) or a filter is malformed"},
}


@router.get("/daily", response_model=DailyReport, responses=PROBLEMS)
async def daily_report(
    request: Request,
    ctx: Context,
    caller: Finance,
    from_: Annotated[date, Query(alias="from", description="first UTC day, included")],
    to: Annotated[date, Query(description="last UTC day, included")],
    currency: CurrencyFilter = None,
    gateway: Gateway | None = None,
) -> Response:
    """Amounts in minor units of each line's currency; days without postings are left out."""
    if to < from_:
        raise Problem(422, "invalid_filter", "`to` is before `from`", parameter="to")
    if (to - from_).days >= MAX_REPORT_DAYS:
        raise Problem(
            422, "invalid_filter", f"a report covers at most {MAX_REPORT_DAYS} days",
            parameter="to",
        )  # fmt: skip
    days = await reports.daily_totals(ctx.pool, from_, to, currency, gateway)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(
            _csv(days),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="daily-{from_}-{to}.csv"',
            },
        )
    report = DailyReport.model_validate(
        {"from": from_, "to": to, "days": days, "totals": _by_currency(days)}
    )
    return Response(report.model_dump_json(by_alias=True), media_type="application/json")


def _by_currency(days: list[DailyTotals]) -> list[CurrencyTotals]:
    sums: dict[str, dict[str, int]] = {}
    for line in days:
        into = sums.setdefault(line.currency, dict.fromkeys(AMOUNTS, 0))
        for name in AMOUNTS:
            into[name] += getattr(line, name)
    return [CurrencyTotals(currency=c, **sums[c]) for c in sorted(sums)]


def _csv(days: list[DailyTotals]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for line in days:
        writer.writerow([str(v) for v in line.model_dump(mode="json").values()])
    return out.getvalue()
