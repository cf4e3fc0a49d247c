"""Every setting of the service, read from the environment (or a `.env` file) and validated once."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SANDBOX_STRIPE_KEY = "sk_test_sandbox"
SANDBOX_RAZORPAY_KEY_ID = "rzp_test_sandbox"
SANDBOX_RAZORPAY_KEY_SECRET = "rzp_test_secret_sandbox"
SANDBOX_STRIPE_WEBHOOK_SECRET = "whsec_sandbox"
SANDBOX_RAZORPAY_WEBHOOK_SECRET = "rzp_webhook_sandbox"
SANDBOX_MERCHANT_SECRET = "merchant_secret_sandbox"

REAL_STRIPE_API = "https://api.stripe.com"
REAL_RAZORPAY_API = "https://api.razorpay.com"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "payments"

    database_url: str = "postgresql://postgres@127.0.0.1:5432/payments"
    database_pool_size: int = 10

    stripe_api_base: str = "http://127.0.0.1:8100/stripe"
    stripe_secret_key: str = SANDBOX_STRIPE_KEY
    stripe_webhook_secret: str = SANDBOX_STRIPE_WEBHOOK_SECRET
    """Comma-separated: several secrets are accepted at once while one is rotated."""
    razorpay_api_base: str = "http://127.0.0.1:8100/razorpay"
    razorpay_key_id: str = SANDBOX_RAZORPAY_KEY_ID
    razorpay_key_secret: str = SANDBOX_RAZORPAY_KEY_SECRET
    razorpay_webhook_secret: str = SANDBOX_RAZORPAY_WEBHOOK_SECRET
    razorpay_webhook_max_age_seconds: int = 24 * 60 * 60
    """Razorpay signs no timestamp: an unseen event older than this is refused as a replay."""
    gateway_timeout_seconds: float = 10.0
    sandbox_checkout_base: str | None = "http://127.0.0.1:8100"
    """Where the sandbox hosts its test checkout page; shown to clients only in development."""

    merchant_confirmation_url: str | None = None
    """Signed callback asked to confirm each authorized order before capture; none = accept."""
    merchant_callback_secret: str = SANDBOX_MERCHANT_SECRET

    authorization_window_seconds: int = 15 * 60
    manual_capture_window_seconds: int = 6 * 24 * 60 * 60
    """How long a manual-capture checkout waits for its capture call; below Stripe's 7 days."""

    @model_validator(mode="after")
    def _refuse_sandbox_in_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            problems = production_problems(self)
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self


def production_problems(settings: Settings) -> list[str]:
    """Names every setting that would make a production process talk to a sandbox or test keys."""
    problems = []
    if settings.stripe_api_base != REAL_STRIPE_API:
        problems.append(f"STRIPE_API_BASE must be {REAL_STRIPE_API}")
    if not settings.stripe_secret_key.startswith(("sk_live_", "rk_live_")):
        problems.append("STRIPE_SECRET_KEY must be a live key")
    if settings.stripe_webhook_secret in ("", SANDBOX_STRIPE_WEBHOOK_SECRET):
        problems.append("STRIPE_WEBHOOK_SECRET must be set to the endpoint's secret")
    if settings.razorpay_api_base != REAL_RAZORPAY_API:
        problems.append(f"RAZORPAY_API_BASE must be {REAL_RAZORPAY_API}")
    if not settings.razorpay_key_id.startswith("rzp_live_"):
        problems.append("RAZORPAY_KEY_ID must be a live key")
    if settings.razorpay_key_secret in ("", SANDBOX_RAZORPAY_KEY_SECRET):
        problems.append("RAZORPAY_KEY_SECRET must be set")
    if settings.razorpay_webhook_secret in ("", SANDBOX_RAZORPAY_WEBHOOK_SECRET):
        problems.append("RAZORPAY_WEBHOOK_SECRET must be set")
    if settings.merchant_callback_secret == SANDBOX_MERCHANT_SECRET:
        problems.append("MERCHANT_CALLBACK_SECRET must not be the sandbox default")
    if settings.sandbox_checkout_base:
        problems.append("SANDBOX_CHECKOUT_BASE must be empty")
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
