"""How a checkout's money is split between sellers, a royalty and the platform's fee: integer
minor units that add up exactly to the checkout's amount, checked before anything is written."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

SellerId = str


class Model(BaseModel):
    """As `domain.checkout.Model` (which imports this module): unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")


class ShareKind(StrEnum):
    SALE = "sale"
    """The seller of what was bought (a venue, or a resale seller)."""
    ROYALTY = "royalty"
    """Paid to another seller on a resale (the original venue)."""


class SellerShare(Model):
    seller_id: SellerId = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    amount: int = Field(gt=0, description="minor units")
    kind: ShareKind = ShareKind.SALE


class Splits(Model):
    """Each seller's share, an optional royalty, and the platform's fee (what it keeps)."""

    shares: list[SellerShare] = Field(min_length=1, max_length=10)
    platform_fee: int = Field(ge=0, description="minor units the platform keeps")

    @model_validator(mode="after")
    def _one_share_per_seller_and_kind(self) -> Splits:
        seen = {(s.seller_id, s.kind) for s in self.shares}
        if len(seen) != len(self.shares):
            raise ValueError("a seller has at most one share of each kind")
        return self

    @property
    def total(self) -> int:
        return sum(s.amount for s in self.shares) + self.platform_fee


class SplitsError(ValueError):
    """Splits that cannot be accepted; `code` is the problem's machine-readable code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def check_splits(splits: Splits, amount: int, release_at: datetime | None, now: datetime) -> None:
    """The one place that decides whether splits fit a checkout (raises `SplitsError`)."""
    if splits.total != amount:
        raise SplitsError(
            "splits_do_not_add_up",
            f"the shares and the platform fee add up to {splits.total} minor units,"
            f" the checkout's amount is {amount}: they must be equal",
        )
    if release_at is not None and release_at.tzinfo is None:
        raise SplitsError("release_at_without_timezone", "release_at needs a timezone offset")
    if release_at is not None and release_at <= now:
        raise SplitsError("release_at_in_the_past", "release_at must be in the future")
