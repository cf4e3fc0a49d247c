-- The daily report's rollup (issue 20): per UTC day of the posting, gateway and currency, what
-- the merchant's accounts received. Kept by a trigger in the transaction of each posting, so it is
-- never behind the ledger; a report over a month reads a few rows instead of every posting.
--   merchant:sales     captures (negative postings; captured = -sum)
--   merchant:refunds   refunds settled (positive postings)
--   merchant:disputes  dispute funds withdrawn (positive) and reinstated (negative)
-- Postings are never updated or deleted; the trigger only follows inserts. Each day, gateway and
-- currency is kept in 16 slots (by a hash of the payment id), so concurrent postings of different
-- payments rarely wait for the same row's lock; a transaction posts for one payment, so it only
-- ever locks one slot (no deadlock). A report sums the slots.

CREATE TABLE ledger_daily (
    day             date NOT NULL,
    gateway         text NOT NULL,
    currency        char(3) NOT NULL,
    slot            smallint NOT NULL,
    captured        bigint NOT NULL DEFAULT 0,
    captures        integer NOT NULL DEFAULT 0,
    refunded        bigint NOT NULL DEFAULT 0,
    refunds         integer NOT NULL DEFAULT 0,
    withdrawn       bigint NOT NULL DEFAULT 0,
    withdrawals     integer NOT NULL DEFAULT 0,
    reinstated      bigint NOT NULL DEFAULT 0,
    reinstatements  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (day, gateway, currency, slot)
);

CREATE FUNCTION ledger_daily_add() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    posting_gateway text;
BEGIN
    SELECT gateway INTO STRICT posting_gateway FROM payments WHERE payment_id = NEW.payment_id;
    INSERT INTO ledger_daily AS d (day, gateway, currency, slot, captured, captures, refunded,
                                   refunds, withdrawn, withdrawals, reinstated, reinstatements)
    VALUES (
        (NEW.created_at AT TIME ZONE 'UTC')::date, posting_gateway, NEW.currency,
        hashtext(NEW.payment_id) & 15,
        CASE WHEN NEW.account = 'merchant:sales' THEN -NEW.amount ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:sales' THEN 1 ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:refunds' THEN NEW.amount ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:refunds' THEN 1 ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:disputes' AND NEW.amount > 0 THEN NEW.amount ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:disputes' AND NEW.amount > 0 THEN 1 ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:disputes' AND NEW.amount < 0 THEN -NEW.amount ELSE 0 END,
        CASE WHEN NEW.account = 'merchant:disputes' AND NEW.amount < 0 THEN 1 ELSE 0 END
    )
    ON CONFLICT (day, gateway, currency, slot) DO UPDATE SET
        captured = d.captured + EXCLUDED.captured,
        captures = d.captures + EXCLUDED.captures,
        refunded = d.refunded + EXCLUDED.refunded,
        refunds = d.refunds + EXCLUDED.refunds,
        withdrawn = d.withdrawn + EXCLUDED.withdrawn,
        withdrawals = d.withdrawals + EXCLUDED.withdrawals,
        reinstated = d.reinstated + EXCLUDED.reinstated,
        reinstatements = d.reinstatements + EXCLUDED.reinstatements;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_daily_add AFTER INSERT ON ledger_entries
    FOR EACH ROW WHEN (NEW.account IN ('merchant:sales', 'merchant:refunds', 'merchant:disputes'))
    EXECUTE FUNCTION ledger_daily_add();

-- What the ledger held before this migration.
INSERT INTO ledger_daily (day, gateway, currency, slot, captured, captures, refunded, refunds,
                          withdrawn, withdrawals, reinstated, reinstatements)
SELECT (e.created_at AT TIME ZONE 'UTC')::date, p.gateway, e.currency, 0,
       coalesce(-sum(e.amount) FILTER (WHERE e.account = 'merchant:sales'), 0),
       count(*) FILTER (WHERE e.account = 'merchant:sales'),
       coalesce(sum(e.amount) FILTER (WHERE e.account = 'merchant:refunds'), 0),
       count(*) FILTER (WHERE e.account = 'merchant:refunds'),
       coalesce(sum(e.amount) FILTER (WHERE e.account = 'merchant:disputes' AND e.amount > 0), 0),
       count(*) FILTER (WHERE e.account = 'merchant:disputes' AND e.amount > 0),
       coalesce(-sum(e.amount) FILTER (WHERE e.account = 'merchant:disputes' AND e.amount < 0), 0),
       count(*) FILTER (WHERE e.account = 'merchant:disputes' AND e.amount < 0)
FROM ledger_entries e JOIN payments p USING (payment_id)
WHERE e.account IN ('merchant:sales', 'merchant:refunds', 'merchant:disputes')
GROUP BY 1, 2, 3;
