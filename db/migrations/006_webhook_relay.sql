-- The webhook inbox becomes the relay's queue: intake only inserts (and commits); the relay claims
-- pending rows, delivers them to their workflows, retries failures with backoff and parks a row
-- that keeps failing as a dead letter for operators to replay.

ALTER TABLE webhook_inbox
    ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY,
    -- Razorpay does not sign its event id: the same signed body is one event, whatever its id.
    ADD COLUMN body_sha256 text,
    -- The gateway object the event is about (a relay delivers one subject's events in order).
    ADD COLUMN subject text,
    ADD COLUMN state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead')),
    -- Failures that count towards the dead letter (an unreachable Temporal does not).
    ADD COLUMN failures integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A relay's claim on the row while it delivers it; an expired claim is free to take again.
    ADD COLUMN claimed_until timestamptz,
    ADD COLUMN last_error text,
    ADD COLUMN dead_lettered_at timestamptz;

UPDATE webhook_inbox SET state = 'delivered' WHERE delivered_at IS NOT NULL;

ALTER TABLE webhook_inbox ADD CONSTRAINT webhook_inbox_seq UNIQUE (seq);
CREATE UNIQUE INDEX webhook_inbox_signed_body
    ON webhook_inbox (gateway, body_sha256) WHERE body_sha256 IS NOT NULL;
DROP INDEX webhook_inbox_undelivered;
CREATE INDEX webhook_inbox_pending ON webhook_inbox (seq) WHERE state = 'pending';
CREATE INDEX webhook_inbox_dead ON webhook_inbox (dead_lettered_at) WHERE state = 'dead';
CREATE INDEX webhook_inbox_delivered ON webhook_inbox (delivered_at) WHERE state = 'delivered';

-- Wake the relays when a row becomes pending, in the transaction that makes it so (the channel
-- is db.inbox.CHANNEL).
CREATE FUNCTION webhook_inbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('webhook_inbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER webhook_inbox_pending_inserted AFTER INSERT ON webhook_inbox
    FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION webhook_inbox_notify();
CREATE TRIGGER webhook_inbox_pending_again AFTER UPDATE OF state ON webhook_inbox
    FOR EACH ROW WHEN (OLD.state <> 'pending' AND NEW.state = 'pending')
    EXECUTE FUNCTION webhook_inbox_notify();
