"""Retry policies and timeouts of every saga's activities: how hard each kind of step tries."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import Priority, RetryPolicy

# Gateway calls: a few quick retries for blips, then a slower cadence; declines and invalid
# requests are non-retryable and surface at once. The same idempotency key rides every attempt.
GATEWAY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=12,
)
# Creating the gateway payment: a short try while the client waits for its answer; an outage is
# then retried in rounds until the authorization window closes (an outage delays, not refuses).
CREATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
# Ledger writes and compensations must not give up: an outage only delays them.
PERSISTENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
# The merchant may be down; after a few minutes of trying, the order is not confirmed.
MERCHANT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=6,
)
# The reconciler leaves a gateway that does not answer to its next run rather than retry long.
CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)

GATEWAY_TIMEOUT = timedelta(seconds=30)
LEDGER_TIMEOUT = timedelta(seconds=15)
MERCHANT_TIMEOUT = timedelta(seconds=15)

# Task-queue priority (https://docs.temporal.io/develop/task-queue-priority-fairness): when a
# task queue has a backlog, tasks with a lower key are dispatched first; 3 is the server's
# default. Work no customer waits for (a checkout released at its deadline, the reconciler and
# what it starts) yields to live checkouts, so a storm of it cannot stall them.
LIVE = Priority.default
BACKGROUND = Priority(priority_key=4)

# A risk review of an authorization ends (the configured default applies) this long before the
# authorization's window closes, or half-way through a window shorter than twice this.
AUTHORIZATION_REVIEW_MARGIN = timedelta(hours=1)


def authorization_review_time(window_seconds: int) -> timedelta:
    """How long a risk review of an authorization may wait: always less than its window."""
    window = timedelta(seconds=window_seconds)
    return max(window - AUTHORIZATION_REVIEW_MARGIN, window / 2)
