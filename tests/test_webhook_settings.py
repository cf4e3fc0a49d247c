"""The webhook inbox's retention must outlive the gateways' retries and replay windows, or a late
retry of a forgotten event would be taken for a new one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import development_settings


def test_the_default_retention_is_thirty_days() -> None:
    assert development_settings(_env_file=None).webhook_inbox_retention_days == 30


@pytest.mark.parametrize(
    ("days", "razorpay_max_age_seconds"),
    [(2, 3600), (3, 3 * 24 * 60 * 60), (5, 10 * 24 * 60 * 60)],
)
def test_a_retention_shorter_than_the_gateways_windows_is_refused(
    days: int, razorpay_max_age_seconds: int
) -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_INBOX_RETENTION_DAYS"):
        development_settings(
            _env_file=None,
            webhook_inbox_retention_days=days,
            razorpay_webhook_max_age_seconds=razorpay_max_age_seconds,
        )
