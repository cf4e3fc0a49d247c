-- Gateway routing (issue 16): one circuit breaker per gateway, shared by every worker and API
-- replica (domain/health.py decides each transition; db/health.py applies it under the row's
-- lock), and an operator's override with who set it and why.
CREATE TABLE gateway_health (
    gateway           text PRIMARY KEY,
    state             text NOT NULL DEFAULT 'closed' CHECK (state IN ('closed', 'open', 'half_open')),
    failures          integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_started_at timestamptz,
    opened_at         timestamptz,
    last_failure      text,
    override          text NOT NULL DEFAULT 'auto' CHECK (override IN ('auto', 'down', 'up')),
    override_by       text,
    override_reason   text,
    override_at       timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO gateway_health (gateway) VALUES ('stripe'), ('razorpay');

-- Every override an operator set, for the audit trail.
CREATE TABLE gateway_overrides (
    id         bigserial PRIMARY KEY,
    gateway    text NOT NULL,
    override   text NOT NULL,
    set_by     text NOT NULL,
    reason     text NOT NULL DEFAULT '',
    set_at     timestamptz NOT NULL DEFAULT now()
);
