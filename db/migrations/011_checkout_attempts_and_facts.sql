-- An order whose checkout ended without money may be paid again: one payment row per attempt.
ALTER TABLE payments ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);
ALTER TABLE payments DROP CONSTRAINT payments_order_id_key;
ALTER TABLE payments ADD CONSTRAINT payments_order_attempt UNIQUE (order_id, attempt);

-- Facts are recorded, requests may be refused: a refund made at the gateway (or a capture learnt
-- late) is recorded whatever the ledger thought was left, and the conflict is flagged for an
-- operator instead of being refused by a constraint.
ALTER TABLE payments DROP CONSTRAINT payments_check;
ALTER TABLE payments DROP CONSTRAINT payments_refunds_within_capture;

-- Money the gateway took after its checkout had ended without it, given back.
ALTER TABLE refunds DROP CONSTRAINT refunds_mode_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_mode_check
    CHECK (mode IN ('own', 'observed', 'compensation', 'late_payment'));
