-- A dispute event the gateway does not confirm is left to operators as a reconciliation flag of
-- its own kind; there is no payment of ours to name.

ALTER TABLE reconciliation_flags
    DROP CONSTRAINT reconciliation_flags_object_kind_check,
    ADD CONSTRAINT reconciliation_flags_object_kind_check
        CHECK (object_kind IN ('payment', 'refund', 'dispute')),
    ALTER COLUMN payment_id DROP NOT NULL;
