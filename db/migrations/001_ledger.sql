-- Payments (one row per checkout), their attempts, balanced ledger entries, idempotency records
-- and an audit log of every state change. Amounts are integer minor units.

CREATE TABLE payments (
    payment_id          text PRIMARY KEY,
    order_id            text NOT NULL UNIQUE,
    workflow_id         text NOT NULL UNIQUE,
    customer_id         text NOT NULL,
    customer_email      text,
    gateway             text NOT NULL CHECK (gateway IN ('stripe', 'razorpay')),
    capture_mode        text NOT NULL,
    amount              bigint NOT NULL CHECK (amount > 0),
    currency            char(3) NOT NULL,
    status              text NOT NULL,
    gateway_payment_id  text,
    gateway_charge_id   text,
    amount_captured     bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0),
    amount_refunded     bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    metadata            jsonb NOT NULL DEFAULT '{}',
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_refunded <= amount_captured),
    CHECK (amount_captured <= amount)
);
CREATE INDEX payments_gateway_payment_id ON payments (gateway, gateway_payment_id);
CREATE INDEX payments_customer ON payments (customer_id);

CREATE TABLE payment_attempts (
    id                  bigserial PRIMARY KEY,
    payment_id          text NOT NULL REFERENCES payments,
    record_key          text NOT NULL UNIQUE,
    gateway_attempt_id  text,
    outcome             text NOT NULL,
    error_code          text,
    error_message       text,
    at                  timestamptz NOT NULL
);

CREATE TABLE ledger_entries (
    id          bigserial PRIMARY KEY,
    payment_id  text NOT NULL REFERENCES payments,
    record_key  text NOT NULL,
    account     text NOT NULL,
    amount      bigint NOT NULL,
    currency    char(3) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (record_key, account)
);
CREATE INDEX ledger_entries_payment ON ledger_entries (payment_id);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    payment_id  text NOT NULL REFERENCES payments,
    record_key  text NOT NULL UNIQUE,
    step        text NOT NULL,
    status      text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_payment ON audit_log (payment_id, id);

CREATE TABLE idempotency_records (
    scope           text NOT NULL,
    key             text NOT NULL,
    request_hash    text NOT NULL,
    response_status integer,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

CREATE TABLE webhook_inbox (
    gateway       text NOT NULL,
    event_id      text NOT NULL,
    event_type    text NOT NULL,
    payload       jsonb NOT NULL,
    outcome       text NOT NULL DEFAULT 'received',
    workflow_id   text,
    detail        text NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,
    PRIMARY KEY (gateway, event_id)
);
CREATE INDEX webhook_inbox_undelivered ON webhook_inbox (received_at) WHERE delivered_at IS NULL;
