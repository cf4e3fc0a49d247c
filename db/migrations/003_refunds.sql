-- Refunds: one row per refund (ours, a checkout's compensation, or one observed at the gateway),
-- the amount reserved on its payment while the gateway works, and refund steps in the audit log.

ALTER TABLE payments
    ADD COLUMN amount_refund_pending bigint NOT NULL DEFAULT 0
        CHECK (amount_refund_pending >= 0),
    ADD CONSTRAINT payments_refunds_within_capture
        CHECK (amount_refunded + amount_refund_pending <= amount_captured);

CREATE TABLE refunds (
    refund_id          text PRIMARY KEY,
    payment_id         text NOT NULL REFERENCES payments,
    workflow_id        text NOT NULL UNIQUE,
    gateway            text NOT NULL CHECK (gateway IN ('stripe', 'razorpay')),
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           char(3) NOT NULL,
    status             text NOT NULL CHECK (status IN
                           ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')),
    reason             text NOT NULL
                           CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer',
                                             'other')),
    note               text,
    mode               text NOT NULL CHECK (mode IN ('own', 'observed', 'compensation')),
    gateway_refund_id  text,
    idempotency_key    text NOT NULL,
    failure_reason     text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway, gateway_refund_id)
);
CREATE INDEX refunds_payment ON refunds (payment_id, created_at);

-- A refund's steps sit in the payment's audit log; these say which refund and its status then.
ALTER TABLE audit_log
    ADD COLUMN refund_id text REFERENCES refunds,
    ADD COLUMN refund_status text;
CREATE INDEX audit_log_refund ON audit_log (refund_id, id) WHERE refund_id IS NOT NULL;
