-- Delivery bookkeeping for the webhook inbox, and the gateways' announced downtimes.

ALTER TABLE webhook_inbox
    ADD COLUMN delivery_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN last_attempt_at timestamptz;
CREATE INDEX webhook_inbox_type ON webhook_inbox (gateway, event_type);

CREATE TABLE gateway_downtimes (
    gateway      text NOT NULL,
    downtime_id  text NOT NULL,
    method       text NOT NULL,
    status       text NOT NULL,
    severity     text NOT NULL,
    began_at     timestamptz,
    ends_at      timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, downtime_id)
);
