-- Marketplace (issue 18): sellers (a gateway's connected / linked account each) and how a
-- checkout's amount is split between sellers, a royalty and the platform's fee.

CREATE TABLE sellers (
    seller_id           text PRIMARY KEY,
    gateway             text NOT NULL CHECK (gateway IN ('stripe', 'razorpay')),
    gateway_account_id  text NOT NULL,
    name                text NOT NULL DEFAULT '',
    onboarding_state    text NOT NULL DEFAULT 'pending'
                            CHECK (onboarding_state IN ('pending', 'active', 'restricted')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway, gateway_account_id)
);

-- One row per checkout with splits: the platform's fee and when the sellers are paid.
CREATE TABLE payout_plans (
    payment_id    text PRIMARY KEY REFERENCES payments,
    platform_fee  bigint NOT NULL CHECK (platform_fee >= 0),
    release_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payout_shares (
    payment_id  text NOT NULL REFERENCES payout_plans,
    position    integer NOT NULL,
    seller_id   text NOT NULL REFERENCES sellers,
    kind        text NOT NULL CHECK (kind IN ('sale', 'royalty')),
    amount      bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (payment_id, position)
);
CREATE INDEX payout_shares_seller ON payout_shares (seller_id);
