"""Every setting of the service, read from the environment (or a `.env` file) and validated once."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.dispute import DeadlinePolicy
from domain.health import BreakerConfig
from domain.routing import DEFAULT_RULES, RoutingRule
from payload_codec import parse_keys

SANDBOX_STRIPE_KEY = "sk_test_sandbox"
SANDBOX_RAZORPAY_KEY_ID = "rzp_test_sandbox"
SANDBOX_RAZORPAY_KEY_SECRET = "rzp_test_secret_sandbox"
SANDBOX_STRIPE_WEBHOOK_SECRET = "whsec_sandbox"
SANDBOX_RAZORPAY_WEBHOOK_SECRET = "rzp_webhook_sandbox"
SANDBOX_MERCHANT_SECRET = "merchant_secret_sandbox"
SANDBOX_JWT_SECRET = "dev-only-jwt-secret-0123456789abcdef0123456789"
DEV_PAYLOAD_ENCRYPTION_KEYS = "dev-public:4qYH539FMP6swH5U1xZ2Ur4iGhpvYM404cJxQRtSd24="
"""Public, like the sandbox secrets: development seals payloads with it so the dev stack runs the
codec as production does; production refuses it."""
ACCEPTED_JWT_ALGORITHMS = frozenset({"HS256", "RS256", "ES256"})

REAL_STRIPE_API = "https://api.stripe.com"
REAL_RAZORPAY_API = "https://api.razorpay.com"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    # A refused value (a secret, a key) never appears in an error message.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Environment = Environment.PRODUCTION
    """Fail closed: production (every check below) unless development is asked for explicitly."""

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    """TLS to the Temporal frontend; on by itself when an API key or a client certificate is set
    (Temporal Cloud needs one of them)."""
    temporal_tls_ca_cert_path: str = ""
    """PEM of the CA that signed the frontend's certificate; empty: the system's trust store."""
    temporal_tls_client_cert_path: str = ""
    """mTLS: PEM of this client's certificate (with TEMPORAL_TLS_CLIENT_KEY_PATH)."""
    temporal_tls_client_key_path: str = ""
    temporal_tls_server_name: str = ""
    """The name to check the frontend's certificate against, when it differs from the host."""
    temporal_api_key: SecretStr = SecretStr("")
    """Temporal Cloud API key (sent as a bearer token, over TLS)."""
    payload_encryption_keys: SecretStr = SecretStr("")
    """`id:base64key,…` (32-byte AES-256 keys): every Temporal payload is sealed with the first,
    opened with any (rotation; payload_codec.py). Required in production; development uses the
    public development key when unset."""
    temporal_ui_origin: str = ""
    """The Temporal UI's origin (e.g. `https://temporal.example`), allowed to call the codec
    server (`/codec/decode`) from the browser."""
    task_queue: str = "payments"

    database_url: str = "postgresql://postgres@127.0.0.1:5432/payments"
    database_pool_size: int = 10

    stripe_api_base: str = "http://127.0.0.1:8100/stripe"
    stripe_secret_key: SecretStr = SecretStr(SANDBOX_STRIPE_KEY)
    stripe_webhook_secret: SecretStr = SecretStr(SANDBOX_STRIPE_WEBHOOK_SECRET)
    """Comma-separated: several secrets are accepted at once while one is rotated."""
    razorpay_api_base: str = "http://127.0.0.1:8100/razorpay"
    razorpay_key_id: str = SANDBOX_RAZORPAY_KEY_ID
    razorpay_key_secret: SecretStr = SecretStr(SANDBOX_RAZORPAY_KEY_SECRET)
    razorpay_webhook_secret: SecretStr = SecretStr(SANDBOX_RAZORPAY_WEBHOOK_SECRET)
    razorpay_webhook_max_age_seconds: int = 24 * 60 * 60
    """Razorpay signs no timestamp: an unseen event older than this is refused as a replay."""
    gateway_timeout_seconds: float = 10.0
    sandbox_checkout_base: str | None = "http://127.0.0.1:8100"
    """Where the sandbox hosts its test checkout page; shown to clients only in development."""

    merchant_confirmation_url: str | None = None
    """Signed callback asked to confirm each authorized order before capture; none = accept."""
    merchant_callback_secret: SecretStr = SecretStr(SANDBOX_MERCHANT_SECRET)

    jwt_issuer: str = "payment-sagas-dev"
    jwt_audience: str = "payment-sagas"
    jwt_algorithms: str = "HS256"
    """Comma-separated allow-list; HS256 for local use, RS256/ES256 with public keys otherwise."""
    jwt_secret: SecretStr = SecretStr(SANDBOX_JWT_SECRET)
    jwt_public_keys: str = ""
    """PEM public keys (several may be concatenated, e.g. during key rotation)."""
    jwt_max_lifetime_seconds: int = 24 * 60 * 60
    """The longest a token may live (`exp` minus `iat`; tokens then need `iat`); 0: no cap, which
    production refuses."""

    rate_limit_storage: str = "async+memory://"
    """`async+memory://` for one replica; `async+redis://host:6379` to share limits."""
    rate_limit_read: str = "600/minute"
    rate_limit_write: str = "120/minute"
    rate_limit_refund: str = "20/minute"
    rate_limit_evidence: str = "20/minute"
    max_amount_minor: int = 10**10
    """The largest amount, in minor units, a single checkout or refund may ask for."""
    max_body_bytes: int = 64 * 1024
    cors_origins: str = ""
    """Comma-separated origins allowed to call the API from a browser; `*` is refused in
    production."""
    idempotency_retention_hours: int = 48
    audit_retention_days: int = 400
    """How long the caller audit (who asked for each money-moving or decision call) is kept; 0
    keeps it forever. Production refuses less than 365 (PCI DSS 10.5.1: a year)."""

    webhook_inbox_retention_days: int = 30
    """Delivered webhook events are forgotten after this (hourly purge); dead letters stay until
    replayed. At least Stripe's 3 days of retries and Razorpay's replay window, so a gateway's
    late retry is still recognised as a duplicate."""
    webhook_relay_in_api: bool = True
    """Run the webhook relay inside each API process (nothing else to deploy). False when it runs
    as its own process, `python -m api.relay` (the dev stack does): webhook intake then has the
    API's event loop to itself, which keeps its latency low under a burst of routed events."""
    relay_metrics_address: str = ""
    """Where `python -m api.relay` serves its Prometheus metrics (deliveries, lag); empty: off."""
    webhook_relay_concurrency: int = 32
    """Deliveries to workflows in flight at once, per relay (one runs in each API replica)."""
    webhook_relay_sweep_seconds: float = 5.0
    """How often a relay looks for due events without being notified (retries, lost NOTIFYs)."""
    webhook_relay_lease_seconds: float = 60.0
    """How long a relay's claim on an event lasts; a crashed relay's events are taken after it."""
    webhook_relay_max_failures: int = 8
    """Failed deliveries (Temporal unreachable does not count) before an event is dead-lettered."""
    webhook_relay_retry_base_seconds: float = 1.0
    """The first retry's delay after a failed delivery; it doubles, up to the cap."""
    webhook_relay_retry_cap_seconds: float = 300.0

    reconcile_interval_seconds: int = 5 * 60
    """How often the reconciler's Temporal Schedule runs; 0 leaves the schedule alone."""
    reconcile_stale_after_seconds: dict[str, int] = {
        "unknown": 60,
        "processing": 10 * 60,
        "pending": 15 * 60,
        "created": 30 * 60,
        "requires_action": 30 * 60,
        "authorized": 30 * 60,
        "needs_review": 60 * 60,
    }
    """Per status (payments' and refunds'): how long an object may sit in it before the
    reconciler asks the gateway; JSON in the environment."""
    reconcile_lookback_hours: int = 24
    """Closed payments and refunds changed within this window are checked once more."""

    log_level: str = "INFO"
    worker_shutdown_grace_seconds: int = 20
    worker_max_cached_workflows: int = 50
    """Workflows kept in the worker's memory between tasks; fewer saves memory when thousands of
    checkouts wait for their customers, at the cost of replaying a history on their next event."""
    worker_metrics_address: str = "127.0.0.1:9464"
    """Where the worker serves Prometheus metrics (`/metrics`); empty turns them off."""
    worker_deployment_name: str = "payment-sagas"
    """Worker Versioning: the worker polls as build WORKER_BUILD_ID of this Worker Deployment, and
    each workflow type stays on the build it started on (pinned) or moves to the deployment's
    current build (auto-upgrade). See docs/deployment.md."""
    worker_build_id: str = "dev"
    """This build's id, e.g. the image tag: a new one for every change of workflow code."""
    api_metrics_address: str = "127.0.0.1:9465"
    """Where the API serves Prometheus metrics (`/metrics`), apart from the public app; empty
    turns them off. Keep it off the public network: the scraper alone should reach it."""
    tracing_exporter: Literal["", "console", "otlp"] = ""
    """OpenTelemetry traces through Temporal's interceptor: off, to stdout, or OTLP/HTTP
    (`OTEL_EXPORTER_OTLP_ENDPOINT`)."""

    default_gateway: Literal["auto", "stripe", "razorpay"] = "auto"
    """The gateway of a checkout whose request names none; `auto`: chosen by ROUTING_RULES."""
    routing_rules: list[RoutingRule] = DEFAULT_RULES
    """Auto routing's gateways in preference order, each with the currencies it takes (default:
    all it settles) and per-currency amount bounds in minor units; JSON, e.g.
    `[{"gateway": "razorpay", "currencies": ["INR"]}, {"gateway": "stripe",
    "max_amount": {"USD": 1000000}}]`. A checkout on auto fails over, in this order, to the
    others that take it when its gateway cannot be reached."""
    declined_retry_on_other_gateway: bool = False
    """A customer whose attempt was declined on an auto-routed checkout may retry on the next
    gateway ROUTING_RULES allowed for it (`POST /v1/checkouts/{id}/switch-gateway`); the payment
    at the gateway left is released first, and money taken there later is given back."""
    breaker_failure_threshold: int = 5
    """Unavailable errors or timeouts of one gateway within the window that open its breaker."""
    breaker_window_seconds: int = 60
    breaker_open_seconds: int = 30
    """How long an open breaker keeps auto routing away before it lets a probe through."""

    authorization_window_seconds: int = 15 * 60
    manual_capture_window_seconds: int = 6 * 24 * 60 * 60
    """How long a manual-capture checkout waits for its capture call; below Stripe's 7 days.
    Razorpay checkouts close theirs earlier, before Razorpay refunds the authorization
    (`domain.checkout.manual_capture_window`)."""
    refund_poll_interval_seconds: int = 60 * 60
    """How long a pending refund waits for a webhook before it asks the gateway (and again)."""
    dispute_deadline_margin_seconds: int = 2 * 24 * 60 * 60
    """How long before a dispute's evidence deadline the deadline policy acts."""
    dispute_deadline_policy: DeadlinePolicy = DeadlinePolicy.SUBMIT_DRAFT_ELSE_LEAVE
    """With no decision by the margin: submit the draft evidence, else leave the dispute to an
    operator until its deadline (`submit_draft_else_leave`, the default: it never gives away a
    dispute the merchant could win), or concede it (`submit_draft_else_accept`, only for a
    dispute known for at least the margin, not flagged, and on a payment with nothing refunded
    or pending). A dispute arriving with less than the margin left is acted on halfway to its
    deadline, never at once."""
    dispute_poll_interval_seconds: int = 6 * 60 * 60
    """How long an open dispute waits for a webhook before it asks the gateway (and again)."""

    @property
    def breaker(self) -> BreakerConfig:
        return BreakerConfig(
            failure_threshold=self.breaker_failure_threshold,
            window_seconds=self.breaker_window_seconds,
            open_seconds=self.breaker_open_seconds,
        )

    @property
    def jwt_algorithm_list(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    @property
    def jwt_public_key_list(self) -> list[str]:
        marker = "-----END PUBLIC KEY-----"
        return [k.strip() + marker for k in self.jwt_public_keys.split(marker) if k.strip()]

    @property
    def temporal_uses_tls(self) -> bool:
        return bool(
            self.temporal_tls
            or self.temporal_api_key.get_secret_value()
            or self.temporal_tls_client_cert_path
            or self.temporal_tls_ca_cert_path
        )

    @property
    def payload_keys(self) -> dict[str, bytes]:
        return parse_keys(self.payload_encryption_keys.get_secret_value())

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _refuse_unsafe_settings(self) -> Settings:
        unknown = set(self.jwt_algorithm_list) - ACCEPTED_JWT_ALGORITHMS
        if unknown or not self.jwt_algorithm_list:
            raise ValueError(f"JWT_ALGORITHMS must be among {sorted(ACCEPTED_JWT_ALGORITHMS)}")
        retention_seconds = self.webhook_inbox_retention_days * 24 * 60 * 60
        if self.webhook_inbox_retention_days < 3 or (
            retention_seconds <= self.razorpay_webhook_max_age_seconds
        ):
            raise ValueError(
                "WEBHOOK_INBOX_RETENTION_DAYS must be at least 3 (Stripe retries for 3 days) and"
                " longer than RAZORPAY_WEBHOOK_MAX_AGE_SECONDS"
            )
        if not self.routing_rules or len({r.gateway for r in self.routing_rules}) != len(
            self.routing_rules
        ):
            raise ValueError("ROUTING_RULES must name each gateway at most once, and one at least")
        self.breaker  # noqa: B018 - validates BREAKER_* (each at least 1)
        if bool(self.temporal_tls_client_cert_path) != bool(self.temporal_tls_client_key_path):
            raise ValueError(
                "TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together"
            )
        if not self.payload_encryption_keys.get_secret_value() and (
            self.environment is Environment.DEVELOPMENT
        ):
            self.payload_encryption_keys = SecretStr(DEV_PAYLOAD_ENCRYPTION_KEYS)
        parse_keys(self.payload_encryption_keys.get_secret_value())  # refuses a malformed list
        if not self.worker_build_id:
            raise ValueError("WORKER_BUILD_ID must be set")
        if not self.worker_deployment_name or "." in self.worker_deployment_name:
            raise ValueError("WORKER_DEPLOYMENT_NAME must be set and must not contain a dot")
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
    if not settings.stripe_secret_key.get_secret_value().startswith(("sk_live_", "rk_live_")):
        problems.append("STRIPE_SECRET_KEY must be a live key")
    if not _secret_list_is_real(settings.stripe_webhook_secret, SANDBOX_STRIPE_WEBHOOK_SECRET):
        problems.append(
            "STRIPE_WEBHOOK_SECRET must be set to the endpoint's secrets (no sandbox one)"
        )
    if settings.razorpay_api_base != REAL_RAZORPAY_API:
        problems.append(f"RAZORPAY_API_BASE must be {REAL_RAZORPAY_API}")
    if not settings.razorpay_key_id.startswith("rzp_live_"):
        problems.append("RAZORPAY_KEY_ID must be a live key")
    if settings.razorpay_key_secret.get_secret_value() in ("", SANDBOX_RAZORPAY_KEY_SECRET):
        problems.append("RAZORPAY_KEY_SECRET must be set")
    if not _secret_list_is_real(settings.razorpay_webhook_secret, SANDBOX_RAZORPAY_WEBHOOK_SECRET):
        problems.append("RAZORPAY_WEBHOOK_SECRET must be set (no sandbox secret in the list)")
    merchant_secret = settings.merchant_callback_secret.get_secret_value()
    if merchant_secret == SANDBOX_MERCHANT_SECRET or not strong_secret(merchant_secret):
        problems.append(
            f"MERCHANT_CALLBACK_SECRET must be a random secret of at least {MIN_SECRET_LENGTH}"
            " characters (not the sandbox default)"
        )
    url = settings.merchant_confirmation_url
    if url is not None and not url.startswith("https://"):
        problems.append("MERCHANT_CONFIRMATION_URL must be an https:// URL")
    hmac_tokens = any(a.startswith("HS") for a in settings.jwt_algorithm_list)
    if hmac_tokens and settings.jwt_secret.get_secret_value() == SANDBOX_JWT_SECRET:
        problems.append("JWT_SECRET must not be the development default")
    elif hmac_tokens and not strong_secret(settings.jwt_secret.get_secret_value()):
        problems.append(
            f"JWT_SECRET must be a random secret of at least {MIN_SECRET_LENGTH} characters"
        )
    if "*" in settings.cors_origin_list:
        problems.append("CORS_ORIGINS must list origins, not *")
    if 0 < settings.audit_retention_days < MIN_AUDIT_RETENTION_DAYS:
        problems.append(
            f"AUDIT_RETENTION_DAYS must be 0 (forever) or at least {MIN_AUDIT_RETENTION_DAYS}"
        )
    payload_keys = settings.payload_encryption_keys.get_secret_value()
    if not payload_keys or DEV_PAYLOAD_ENCRYPTION_KEYS.split(":")[1] in payload_keys:
        problems.append("PAYLOAD_ENCRYPTION_KEYS must hold this deployment's own keys")
    if settings.jwt_max_lifetime_seconds <= 0:
        problems.append("JWT_MAX_LIFETIME_SECONDS must cap token lifetimes")
    if not hmac_tokens and not settings.jwt_public_key_list:
        problems.append("JWT_PUBLIC_KEYS must hold the token issuer's public keys")
    if settings.sandbox_checkout_base:
        problems.append("SANDBOX_CHECKOUT_BASE must be empty")
    return problems


MIN_SECRET_LENGTH = 32
MIN_AUDIT_RETENTION_DAYS = 365
MIN_DISTINCT_CHARACTERS = 12


def strong_secret(secret: str) -> bool:
    """Long enough and not a repeated pattern (`aaaa…`, `abcabc…`): a shared HMAC secret an
    attacker cannot guess offline."""
    return len(secret) >= MIN_SECRET_LENGTH and len(set(secret)) >= MIN_DISTINCT_CHARACTERS


def _secret_list_is_real(secrets: SecretStr, sandbox_secret: str) -> bool:
    """A comma-separated secret list (rotation) with at least one entry and no sandbox one."""
    entries = [s.strip() for s in secrets.get_secret_value().split(",")]
    return bool(entries) and all(entries) and sandbox_secret not in entries


def development_settings(**overrides: Any) -> Settings:
    """Settings for the local stack, the benchmark and the test kit: development mode with the
    sandbox defaults, whatever the environment says about ENVIRONMENT."""
    return Settings(environment=Environment.DEVELOPMENT, **overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
