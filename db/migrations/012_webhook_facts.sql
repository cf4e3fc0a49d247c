-- One fact, one delivery: the same authorization told by Razorpay's webhook and by the client's
-- signed confirmation is kept once (a Temporal signal, a billed action, each time otherwise).
ALTER TABLE webhook_inbox ADD COLUMN fact_key text;
CREATE UNIQUE INDEX webhook_inbox_fact ON webhook_inbox (gateway, fact_key)
    WHERE fact_key IS NOT NULL;
