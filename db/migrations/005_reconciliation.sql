-- The reconciler's runs and the disagreements it leaves to operators.

ALTER TABLE payments ADD COLUMN reconciled_at timestamptz;
ALTER TABLE refunds ADD COLUMN reconciled_at timestamptz;

CREATE TABLE reconciliation_runs (
    run_id       text PRIMARY KEY,
    trigger      text NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    checked      integer NOT NULL,
    changed      integer NOT NULL,
    flagged      integer NOT NULL,
    unreachable  integer NOT NULL
);
CREATE INDEX reconciliation_runs_recent ON reconciliation_runs (started_at DESC);

CREATE TABLE reconciliation_flags (
    id              bigserial PRIMARY KEY,
    run_id          text NOT NULL,
    object_kind     text NOT NULL CHECK (object_kind IN ('payment', 'refund')),
    object_id       text NOT NULL,
    payment_id      text NOT NULL,
    ledger_status   text NOT NULL,
    gateway_status  text,
    detail          text NOT NULL,
    flagged_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    UNIQUE (object_kind, object_id, ledger_status, gateway_status)
);
CREATE INDEX reconciliation_flags_open ON reconciliation_flags (flagged_at) WHERE resolved_at IS NULL;
