-- Payment history lists (issue 20): newest first with a keyset cursor on (created_at, id), each
-- filter that narrows a list a lot led by its own index, and free text by prefix over the order
-- id and the gateway's ids.

CREATE INDEX payments_newest ON payments (created_at DESC, payment_id DESC);
CREATE INDEX payments_customer_newest ON payments (customer_id, created_at DESC, payment_id DESC);
CREATE INDEX payments_status_newest ON payments (status, created_at DESC, payment_id DESC);
CREATE INDEX payments_updated ON payments (updated_at);
-- an amount range means something within one currency
CREATE INDEX payments_currency_amount ON payments (currency, amount);
CREATE INDEX payments_order_prefix ON payments (order_id text_pattern_ops);
CREATE INDEX payments_gateway_payment_prefix ON payments (gateway_payment_id text_pattern_ops);
CREATE INDEX payments_gateway_charge_prefix ON payments (gateway_charge_id text_pattern_ops);

CREATE INDEX refunds_newest ON refunds (created_at DESC, refund_id DESC);
CREATE INDEX refunds_status_newest ON refunds (status, created_at DESC, refund_id DESC);

CREATE INDEX disputes_newest ON disputes (created_at DESC, dispute_id DESC);
CREATE INDEX disputes_status_newest ON disputes (status, created_at DESC, dispute_id DESC);
