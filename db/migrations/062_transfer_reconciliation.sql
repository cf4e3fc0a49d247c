-- Marketplace reconciliation (issue 18): the reconciler compares each seller's transfers at the
-- gateway with the ledger; a transfer it found agreeing is not asked about again until it
-- changes, and a disagreement is an operator's flag of its own kind.

ALTER TABLE transfers ADD COLUMN reconciled_at timestamptz;

ALTER TABLE reconciliation_flags
    DROP CONSTRAINT reconciliation_flags_object_kind_check,
    ADD CONSTRAINT reconciliation_flags_object_kind_check
        CHECK (object_kind IN ('payment', 'refund', 'dispute', 'transfer'));
