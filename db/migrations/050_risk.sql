-- Risk screening (issue 17): the rules and thresholds, changed with SQL and read on every
-- assessment (no deploy), and every assessment with its inputs, rule hits, decision and review.

-- One row: the scores that turn rule hits into a decision, and the review settings.
CREATE TABLE risk_settings (
    id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
    review_score          integer NOT NULL CHECK (review_score >= 0),
    block_score           integer NOT NULL CHECK (block_score >= 0),
    review_window_seconds integer NOT NULL CHECK (review_window_seconds > 0),
    review_default        text NOT NULL CHECK (review_default IN ('approved', 'rejected'))
);
INSERT INTO risk_settings (review_score, block_score, review_window_seconds, review_default)
VALUES (50, 100, 3600, 'rejected');

-- One row per rule (domain/risk.py RuleConfig): `params` holds limit and window_seconds
-- (velocity, distinct cards), thresholds in minor units per currency (amount, first purchase) or
-- levels (the gateway's risk levels that hit).
CREATE TABLE risk_rules (
    rule       text PRIMARY KEY,
    enabled    boolean NOT NULL DEFAULT true,
    score      integer NOT NULL CHECK (score >= 0),
    params     jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- Velocity limits depend on the shop: they ship switched off, with a starting point filled in.
INSERT INTO risk_rules (rule, enabled, score, params) VALUES
    ('velocity_customer', false, 100, '{"limit": 20, "window_seconds": 600}'),
    ('velocity_email',    false, 100, '{"limit": 20, "window_seconds": 600}'),
    ('velocity_ip',       false, 100, '{"limit": 50, "window_seconds": 600}'),
    ('velocity_card',     false, 100, '{"limit": 10, "window_seconds": 600}'),
    ('distinct_cards',    true,   50, '{"limit": 4, "window_seconds": 86400}'),
    ('amount',            true,   50,
     '{"thresholds": {"USD": 1000000, "EUR": 1000000, "GBP": 1000000, "INR": 50000000,
                      "JPY": 1500000}}'),
    ('first_purchase',    true,   50,
     '{"thresholds": {"USD": 200000, "EUR": 200000, "GBP": 200000, "INR": 10000000,
                      "JPY": 300000}}'),
    ('country_mismatch',  true,   30, '{}'),
    ('gateway_risk',      true,   50, '{"levels": ["elevated", "highest"]}');

CREATE TABLE risk_assessments (
    id                bigserial PRIMARY KEY,
    checkout_id       text NOT NULL,
    workflow_id       text NOT NULL,
    stage             text NOT NULL CHECK (stage IN ('create', 'authorization')),
    customer_id       text NOT NULL,
    customer_email    text,
    client_ip         text,
    customer_country  text,
    card_fingerprint  text,
    card_country      text,
    amount            bigint NOT NULL,
    currency          char(3) NOT NULL,
    inputs            jsonb NOT NULL,
    hits              jsonb NOT NULL,
    score             integer NOT NULL,
    decision          text NOT NULL CHECK (decision IN ('allow', 'review', 'block')),
    review_status     text CHECK (review_status IN ('pending', 'approved', 'rejected',
                                                    'timed_out_approved', 'timed_out_rejected')),
    review_deadline   timestamptz,
    reviewer          text,
    review_note       text,
    reviewed_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (checkout_id, stage),
    CHECK ((decision = 'review') = (review_status IS NOT NULL))
);
-- The velocity windows look back from now per key.
CREATE INDEX risk_assessments_customer ON risk_assessments (customer_id, stage, created_at);
CREATE INDEX risk_assessments_email ON risk_assessments (customer_email, stage, created_at)
    WHERE customer_email IS NOT NULL;
CREATE INDEX risk_assessments_ip ON risk_assessments (client_ip, stage, created_at)
    WHERE client_ip IS NOT NULL;
CREATE INDEX risk_assessments_card ON risk_assessments (card_fingerprint, stage, created_at)
    WHERE card_fingerprint IS NOT NULL;
-- The review queue, oldest first.
CREATE INDEX risk_assessments_pending ON risk_assessments (created_at)
    WHERE review_status = 'pending';
