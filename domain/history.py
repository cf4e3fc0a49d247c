"""Payment history and finance views: what a list or a daily report asks of the ledger (filters,
a page's position) and what it answers (a payment's summary, a day's totals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import BaseModel, Field

from domain.checkout import Gateway, PaymentStatus
from domain.dispute import DisputeStage, DisputeStatus
from domain.refund import RefundStatus

MAX_PAGE_SIZE = 200
"""The most rows one page of a list holds, whatever the caller asks."""

MAX_REPORT_DAYS = 366
"""The longest range one daily report covers."""


@dataclass(frozen=True)
class Position:
    """Where a page of a newest-first list ends: the last row's creation time and id. The next page
    holds only rows strictly older, so rows created meanwhile never shift it."""

    created_at: datetime
    id: str


@dataclass(frozen=True)
class TimeRange:
    since: datetime | None = None
    """inclusive"""
    until: datetime | None = None
    """exclusive"""


@dataclass(frozen=True)
class PaymentFilter:
    customer_id: str | None = None
    order_id: str | None = None
    statuses: tuple[PaymentStatus, ...] = ()
    gateway: Gateway | None = None
    currency: str | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    created: TimeRange = field(default_factory=TimeRange)
    updated: TimeRange = field(default_factory=TimeRange)
    text: str | None = None
    """A prefix of the order id or of the gateway's payment or charge id."""


@dataclass(frozen=True)
class RefundFilter:
    customer_id: str | None = None
    payment_id: str | None = None
    statuses: tuple[RefundStatus, ...] = ()
    gateway: Gateway | None = None
    currency: str | None = None
    created: TimeRange = field(default_factory=TimeRange)


@dataclass(frozen=True)
class DisputeFilter:
    payment_id: str | None = None
    statuses: tuple[DisputeStatus, ...] = ()
    stage: DisputeStage | None = None
    gateway: Gateway | None = None
    currency: str | None = None
    created: TimeRange = field(default_factory=TimeRange)


class PaymentSummary(BaseModel):
    """One payment as a list shows it: the ledger's row, without its steps."""

    checkout_id: str
    order_id: str
    attempt: int
    customer_id: str
    gateway: Gateway
    status: PaymentStatus
    amount: int = Field(description="minor units")
    currency: str
    amount_captured: int
    amount_refunded: int
    disputed: bool
    gateway_payment_id: str | None
    gateway_charge_id: str | None
    created_at: datetime
    updated_at: datetime
    left_for: str | None = Field(
        None,
        description="a gateway payment this checkout left for another gateway (a declined"
        " customer retried there): money taken on it is given back from this row",
    )


class DailyTotals(BaseModel):
    """What one UTC day's postings moved on one gateway in one currency, in minor units."""

    day: date
    gateway: Gateway
    currency: str
    captured: int
    captures: int
    refunded: int
    refunds: int
    disputed_withdrawn: int
    dispute_withdrawals: int
    disputed_reinstated: int
    dispute_reinstatements: int
    net: int = Field(description="captured - refunded - disputed_withdrawn + disputed_reinstated")


class CurrencyTotals(BaseModel):
    """A report's sum over its days and gateways, in one currency."""

    currency: str
    captured: int
    captures: int
    refunded: int
    refunds: int
    disputed_withdrawn: int
    dispute_withdrawals: int
    disputed_reinstated: int
    dispute_reinstatements: int
    net: int
