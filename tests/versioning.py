"""Test workers run as one build of a test Worker Deployment, like the production worker: the
sagas declare versioning behaviours, which a real Temporal server accepts only from versioned
workers (the time-skipping server ignores both)."""

from __future__ import annotations

from settings import development_settings
from worker import deployment_config

TEST_DEPLOYMENT = deployment_config(
    development_settings(
        _env_file=None,
        worker_deployment_name="payment-sagas-tests",
        worker_build_id="test",
    )
)
