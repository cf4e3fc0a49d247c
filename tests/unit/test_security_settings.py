"""Production refuses every unsafe setting, naming it and never a byte of its value; the default
is production, so a bare start fails closed."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from api.auth import decode_caller
from api.problems import Problem
from settings import (
    DEV_PAYLOAD_ENCRYPTION_KEYS as DEV_KEYS,
)
from settings import (
    SANDBOX_JWT_SECRET,
    SANDBOX_RAZORPAY_WEBHOOK_SECRET,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    Environment,
    Settings,
    development_settings,
)

LIVE: dict[str, Any] = {
    "environment": Environment.PRODUCTION,
    "stripe_api_base": "https://api.stripe.com",
    "stripe_secret_key": "sk_live_abc",
    "stripe_webhook_secret": "whsec_live",
    "razorpay_api_base": "https://api.razorpay.com",
    "razorpay_key_id": "rzp_live_abc",
    "razorpay_key_secret": "live-secret",
    "razorpay_webhook_secret": "live-webhook-secret",
    "merchant_callback_secret": "Mx7!qP2#vL9$wR4%tY6^uI8&oA1*sD3(",
    "merchant_confirmation_url": "https://shop.example/confirm",
    "jwt_secret": "Zk3-pQ8_rT1+wX6=yB4~nM7|cV2.hJ5,",
    "sandbox_checkout_base": None,
    "payload_encryption_keys": "live-1:" + "B" * 43 + "=",
}


def production(**changes: Any) -> Settings:
    return Settings(_env_file=None, **{**LIVE, **changes})  # type: ignore[call-arg]


def refusal(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        production(**changes)
    return str(caught.value)


def test_a_live_configuration_starts_in_production() -> None:
    assert production().environment is Environment.PRODUCTION


def test_the_default_environment_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    assert Settings.model_fields["environment"].default is Environment.PRODUCTION
    with pytest.raises(ValidationError, match="refusing to start in production"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert development_settings(_env_file=None).environment is Environment.DEVELOPMENT


STRIPE_SANDBOX, RAZORPAY_SANDBOX = SANDBOX_STRIPE_WEBHOOK_SECRET, SANDBOX_RAZORPAY_WEBHOOK_SECRET
UNSAFE = [
    ("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret", f"whsec_1,{STRIPE_SANDBOX}", STRIPE_SANDBOX),
    ("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret", "whsec_live,", "whsec_live"),
    ("RAZORPAY_WEBHOOK_SECRET", "razorpay_webhook_secret", f"{RAZORPAY_SANDBOX}, live", "live"),
    ("MERCHANT_CALLBACK_SECRET", "merchant_callback_secret", "", None),
    ("MERCHANT_CALLBACK_SECRET", "merchant_callback_secret", "short-secret", "short-secret"),
    ("MERCHANT_CALLBACK_SECRET", "merchant_callback_secret", "ab" * 20, "abab"),
    ("MERCHANT_CONFIRMATION_URL", "merchant_confirmation_url", "http://shop.example/c", None),
    ("JWT_SECRET", "jwt_secret", "x" * 40, "xxxx"),
    ("JWT_SECRET", "jwt_secret", "too-short-but-random-9f3k", "9f3k"),
    ("JWT_SECRET", "jwt_secret", SANDBOX_JWT_SECRET, SANDBOX_JWT_SECRET),
    ("CORS_ORIGINS", "cors_origins", "https://shop.example,*", None),
    ("JWT_MAX_LIFETIME_SECONDS", "jwt_max_lifetime_seconds", 0, None),
    ("PAYLOAD_ENCRYPTION_KEYS", "payload_encryption_keys", "", None),
    ("PAYLOAD_ENCRYPTION_KEYS", "payload_encryption_keys", DEV_KEYS, DEV_KEYS.split(":")[1]),
    ("AUDIT_RETENTION_DAYS", "audit_retention_days", 30, None),
]


@pytest.mark.parametrize(("setting", "field", "value", "secret"), UNSAFE)
def test_production_refuses_an_unsafe_setting_naming_it(
    setting: str, field: str, value: object, secret: str | None
) -> None:
    message = refusal(**{field: value})
    assert setting in message
    if secret is not None:
        assert secret not in message


def test_a_refusal_shows_no_input_value() -> None:
    message = refusal(stripe_secret_key="sk_test_51Secret")
    assert "STRIPE_SECRET_KEY" in message
    assert "sk_test_51Secret" not in message
    assert "input_value" not in message


def test_the_example_env_file_leaves_the_merchant_secret_to_fill_in() -> None:
    # Empty, as shipped: production refuses it until the operator writes a real one.
    assert "MERCHANT_CALLBACK_SECRET" in refusal(merchant_callback_secret="")


def _token(settings: Settings, **claims: Any) -> str:
    now = int(time.time())
    base = {"sub": "ops-1", "roles": ["operator"], "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience, "iat": now, "exp": now + 600}  # fmt: skip
    merged = {k: v for k, v in {**base, **claims}.items() if v is not None}
    return jwt.encode(merged, settings.jwt_secret.get_secret_value(), "HS256")


def test_tokens_may_not_outlive_the_lifetime_cap() -> None:
    settings = development_settings(_env_file=None, jwt_max_lifetime_seconds=3600)
    now = int(time.time())
    assert decode_caller(settings, _token(settings)).subject == "ops-1"
    for claims in ({"exp": now + 7200}, {"iat": None}, {"iat": now + 600, "exp": now + 900}):
        with pytest.raises(Problem) as refused:
            decode_caller(settings, _token(settings, **claims))
        assert refused.value.status == 401, claims
    uncapped = development_settings(_env_file=None, jwt_max_lifetime_seconds=0)
    assert decode_caller(uncapped, _token(uncapped, iat=None, exp=now + 7200)).subject == "ops-1"
