-- The saga's own capture in flight: set by the capture activity before it calls the gateway, so
-- the gateway's echo of that capture (a webhook racing the activity's ledger write) is not
-- signalled to the saga, whose capture call reports the outcome itself.
ALTER TABLE payments ADD COLUMN capture_requested_at timestamptz;
