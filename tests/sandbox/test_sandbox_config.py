"""The sandbox refuses live keys at start, naming the setting and never showing the key."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from sandbox.config import SandboxConfig

SECRET_PART = "Xq7sEcReT9"


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("stripe_secret_key", f"sk_live_{SECRET_PART}"),
        ("stripe_secret_key", f"rk_live_{SECRET_PART}"),
        ("razorpay_key_id", f"rzp_live_{SECRET_PART}"),
    ],
)
def test_a_live_key_is_refused_without_showing_it(setting: str, key: str) -> None:
    with pytest.raises(ValidationError) as refused:
        SandboxConfig.model_validate({setting: key})
    assert "live key" in str(refused.value) and setting in str(refused.value)
    assert SECRET_PART not in str(refused.value)


def test_the_sandbox_does_not_start_with_a_live_key() -> None:
    env = {**os.environ, "SANDBOX_STRIPE_SECRET_KEY": f"sk_live_{SECRET_PART}"}
    started = subprocess.run(
        [sys.executable, "-m", "sandbox"], env=env, capture_output=True, text=True, timeout=60
    )
    assert started.returncode != 0
    assert "SANDBOX_STRIPE_SECRET_KEY: a live key (sk_live_…)" in started.stderr
    assert SECRET_PART not in started.stderr + started.stdout


def test_test_keys_are_accepted() -> None:
    config = SandboxConfig(stripe_secret_key="sk_test_x", razorpay_key_id="rzp_test_x")
    assert config.stripe_secret_key == "sk_test_x"
