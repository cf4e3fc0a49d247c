"""Sandbox settings, read from ``SANDBOX_*`` environment variables."""

from pathlib import Path

from pydantic import ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.behaviour import RefundMode

# Key prefixes of live mode: Stripe secret and restricted keys, Razorpay key ids.
_LIVE_PREFIXES = {
    "stripe_secret_key": ("sk_live_", "rk_live_"),
    "razorpay_key_id": ("rzp_live_",),
}


class SandboxConfig(BaseSettings):
    """Everything the sandbox needs to run; every field has an ``SANDBOX_`` env var."""

    # a refused value (a live key) never appears in the error
    model_config = SettingsConfigDict(env_prefix="SANDBOX_", hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = 8100
    stripe_secret_key: str = "sk_test_sandbox"
    stripe_webhook_url: str | None = None
    stripe_webhook_secret: str = "whsec_sandbox"
    razorpay_key_id: str = "rzp_test_sandbox"
    razorpay_key_secret: str = "rzp_test_secret_sandbox"
    razorpay_webhook_url: str | None = None
    razorpay_webhook_secret: str = "rzp_webhook_sandbox"
    state_file: Path | None = None
    refund_mode: RefundMode = "instant"
    webhook_max_attempts: int = 8
    webhook_initial_backoff_seconds: float = 0.5

    @field_validator(*_LIVE_PREFIXES)
    @classmethod
    def _no_live_keys(cls, key: str, info: ValidationInfo) -> str:
        """A live key here means real money is one misrouted call away: refuse to start."""
        assert info.field_name is not None
        for prefix in _LIVE_PREFIXES[info.field_name]:
            if key.startswith(prefix):
                raise ValueError(f"a live key ({prefix}…); the sandbox takes test keys only")
        return key
