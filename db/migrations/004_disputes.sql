-- Disputes: one row per gateway dispute, the payment's disputed flag, and dispute steps in the
-- audit log. Funds withdrawn and reinstated are ledger postings (merchant:disputes against
-- gateway:<gateway>), tracked apart from the dispute's status.

ALTER TABLE payments
    ADD COLUMN disputed boolean NOT NULL DEFAULT false,
    ADD COLUMN status_before_dispute text;

CREATE TABLE disputes (
    dispute_id          text PRIMARY KEY,
    gateway             text NOT NULL CHECK (gateway IN ('stripe', 'razorpay')),
    gateway_dispute_id  text NOT NULL,
    payment_id          text REFERENCES payments,
    gateway_payment_id  text,
    workflow_id         text NOT NULL UNIQUE,
    amount              bigint NOT NULL CHECK (amount >= 0),
    currency            char(3) NOT NULL,
    reason              text,
    stage               text NOT NULL CHECK (stage IN
                            ('inquiry', 'chargeback', 'pre_arbitration', 'arbitration')),
    status              text NOT NULL CHECK (status IN
                            ('open', 'challenged', 'won', 'lost', 'closed', 'prevented')),
    due_by              timestamptz,
    evidence            jsonb,
    submitted           boolean NOT NULL DEFAULT false,
    deadline_action     text,
    amount_withdrawn    bigint NOT NULL DEFAULT 0 CHECK (amount_withdrawn >= 0),
    flagged_reason      text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway, gateway_dispute_id)
);
CREATE INDEX disputes_payment ON disputes (payment_id);
CREATE INDEX disputes_status ON disputes (status, due_by);

-- A dispute on a payment we do not know still has its steps audited.
ALTER TABLE audit_log
    ALTER COLUMN payment_id DROP NOT NULL,
    ADD COLUMN dispute_id text REFERENCES disputes,
    ADD COLUMN dispute_status text;
CREATE INDEX audit_log_dispute ON audit_log (dispute_id, id) WHERE dispute_id IS NOT NULL;
