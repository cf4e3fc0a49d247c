-- Who did it (issue 13, PCI DSS 10.2): one row per money-moving or decision call on the API —
-- the caller's subject and roles, the request id, when, what on which object, and the answer.
-- Append-only: a trigger refuses every UPDATE, and every DELETE but the retention purge's
-- (db/audit.py sets `payments.audit_purge` in its own transaction), and TRUNCATE.
CREATE TABLE caller_audit (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    action          text NOT NULL,
    subject         text NOT NULL,
    roles           text[] NOT NULL,
    request_id      text,
    target_kind     text,
    target_id       text,
    idempotency_key text,
    status          integer NOT NULL
);
CREATE INDEX caller_audit_at ON caller_audit (at, id);
CREATE INDEX caller_audit_subject ON caller_audit (subject, id);
CREATE INDEX caller_audit_target ON caller_audit (target_id, id) WHERE target_id IS NOT NULL;

CREATE FUNCTION caller_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('payments.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'caller_audit is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER caller_audit_no_update_or_delete
    BEFORE UPDATE OR DELETE ON caller_audit
    FOR EACH ROW EXECUTE FUNCTION caller_audit_append_only();
CREATE TRIGGER caller_audit_no_truncate
    BEFORE TRUNCATE ON caller_audit
    FOR EACH STATEMENT EXECUTE FUNCTION caller_audit_append_only();
