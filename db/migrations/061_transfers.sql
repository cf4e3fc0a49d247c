-- Marketplace (issue 18): the payout of a captured checkout, one transfer row per seller share
-- (held, released, reversed), and every reversal. Ledger postings go to `escrow:<seller>`
-- (held for the seller), `seller:<seller>` (paid to the seller's gateway account) and
-- `platform:fees`, against `merchant:sales`.

ALTER TABLE payout_plans
    ADD COLUMN state          text NOT NULL DEFAULT 'holding'
                                  CHECK (state IN ('holding', 'on_hold', 'released')),
    ADD COLUMN hold_reason    text,
    ADD COLUMN opened         boolean NOT NULL DEFAULT false,
    ADD COLUMN fee            bigint NOT NULL DEFAULT 0 CHECK (fee >= 0),
    ADD COLUMN fee_reversed   bigint NOT NULL DEFAULT 0 CHECK (fee_reversed >= 0),
    ADD COLUMN clawed_back    bigint NOT NULL DEFAULT 0 CHECK (clawed_back >= 0),
    ADD CONSTRAINT payout_fee_reversed_within CHECK (fee_reversed <= fee);

CREATE TABLE transfers (
    transfer_id          text PRIMARY KEY,
    payment_id           text NOT NULL REFERENCES payout_plans,
    seller_id            text NOT NULL REFERENCES sellers,
    gateway              text NOT NULL CHECK (gateway IN ('stripe', 'razorpay')),
    amount               bigint NOT NULL CHECK (amount >= 0),
    amount_reversed      bigint NOT NULL DEFAULT 0 CHECK (amount_reversed >= 0),
    amount_released      bigint NOT NULL DEFAULT 0 CHECK (amount_released >= 0),
    currency             char(3) NOT NULL,
    status               text NOT NULL CHECK (status IN ('held', 'released', 'reversed')),
    gateway_transfer_id  text,
    idempotency_key      text NOT NULL UNIQUE,
    released_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (amount_reversed <= amount)
);
CREATE INDEX transfers_seller ON transfers (seller_id, created_at);
CREATE INDEX transfers_payment ON transfers (payment_id);

CREATE TABLE transfer_reversals (
    record_key            text PRIMARY KEY,
    transfer_id           text NOT NULL REFERENCES transfers,
    amount                bigint NOT NULL CHECK (amount > 0),
    gateway_reversal_id   text,
    at                    timestamptz NOT NULL DEFAULT now()
);

-- Operators' decisions on payouts: who released or held, and why.
CREATE TABLE payout_decisions (
    id          bigserial PRIMARY KEY,
    payment_id  text NOT NULL REFERENCES payout_plans,
    decision    text NOT NULL CHECK (decision IN ('release', 'hold')),
    reason      text NOT NULL DEFAULT '',
    caller      text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
