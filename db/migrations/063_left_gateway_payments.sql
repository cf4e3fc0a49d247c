-- A checkout whose customer was declined may retry on another gateway (issue 16). The gateway
-- payment it leaves keeps a row of its own, ended without money and marked `left_for` the
-- checkout, so money the gateway takes on it afterwards (a Razorpay order cannot be canceled) is
-- a late payment of that row, given back from it — never mixed into the checkout's own capture on
-- the next gateway. The row keeps its order and attempt: only checkouts are unique per attempt.
ALTER TABLE payments ADD COLUMN left_for text REFERENCES payments (payment_id);
ALTER TABLE payments DROP CONSTRAINT payments_order_attempt;
CREATE UNIQUE INDEX payments_order_attempt ON payments (order_id, attempt) WHERE left_for IS NULL;
