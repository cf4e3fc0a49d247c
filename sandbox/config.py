"""Sandbox settings, read from ``SANDBOX_*`` environment variables."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.behaviour import RefundMode


class SandboxConfig(BaseSettings):
    """Everything the sandbox needs to run; every field has an ``SANDBOX_`` env var."""

    model_config = SettingsConfigDict(env_prefix="SANDBOX_")

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
