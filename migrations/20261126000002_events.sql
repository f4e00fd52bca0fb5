-- The event log: every org's events, immutable, one row each.
--
-- Order. `seq` numbers events in the order they are inserted; it is unique
-- and never reused, but transactions commit in another order than they
-- insert, so it is not the order a reader can page in without skipping.
-- Readers page by (tx_id, seq), and only through rows below the commit
-- horizon, pg_snapshot_xmin(pg_current_snapshot()): every transaction that
-- has not ended has an id at or above it, so a row that commits later sorts
-- after every position already handed out, whoever wrote it and however long
-- its transaction ran. Writers take no lock, row or sequence in turn; a long
-- transaction anywhere on the server delays what readers see, never what
-- they get.
CREATE TABLE system_events (
    seq            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- UUID v7, chosen by the writer.
    id             uuid        NOT NULL UNIQUE,
    org_id         uuid        NOT NULL,
    type           text        NOT NULL
        CONSTRAINT system_events_type_name
        CHECK (type ~ '^xentri(\.[a-z][a-z0-9_]*){2,3}\.v[1-9][0-9]*$' AND length(type) <= 255),
    -- Kept as appended, byte for byte: a read answers exactly the text the
    -- append answered with, without re-serialising it.
    payload        json        NOT NULL
        CONSTRAINT system_events_payload_object CHECK (json_typeof(payload) = 'object'),
    -- The same rules as xentri_core's EventType and Actor, so every stored
    -- row reads back as a StoredEvent (a row that did not would stall the
    -- relay). The actor's length is checked apart from its pattern: a bounded
    -- repeat such as [!-~]{1,255} builds an automaton that costs tens of
    -- microseconds per row, more than the rest of the insert.
    actor          text        NOT NULL
        CONSTRAINT system_events_actor
        CHECK (actor ~ '^(user|service):[!-~]+$' AND length(actor) - strpos(actor, ':') <= 255),
    trace_id       text        NOT NULL,
    correlation_id text        NOT NULL,
    causation_id   text,
    occurred_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction (top-level, so a savepoint changes nothing).
    -- Always the default: no role may insert this column.
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id()
);

-- Tailing and listing one org, unfiltered and by each filter.
CREATE INDEX system_events_org_tx_seq ON system_events (org_id, tx_id, seq);
CREATE INDEX system_events_org_type_tx_seq ON system_events (org_id, type text_pattern_ops, tx_id, seq);
CREATE INDEX system_events_org_correlation_tx_seq ON system_events (org_id, correlation_id, tx_id, seq);
CREATE INDEX system_events_org_occurred ON system_events (org_id, occurred_at);

-- Immutable: the triggers refuse UPDATE, DELETE and TRUNCATE from every role
-- while they are enabled, and no role the services use holds those
-- privileges. Not protected from the owner (who can disable the triggers or
-- drop the table) or a superuser (who can skip triggers): hence the owner's
-- login is for migrations only, and the services never log in as either.
CREATE FUNCTION system_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'system_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER system_events_no_update_delete
    BEFORE UPDATE OR DELETE ON system_events
    FOR EACH ROW EXECUTE FUNCTION system_events_append_only();

CREATE TRIGGER system_events_no_truncate
    BEFORE TRUNCATE ON system_events
    FOR EACH STATEMENT EXECUTE FUNCTION system_events_append_only();

COMMENT ON TABLE system_events IS
    'Append-only for the services: no service role holds UPDATE, DELETE, TRUNCATE or TRIGGER, and triggers '
    'refuse UPDATE, DELETE and TRUNCATE from every role while enabled. Not protected from the owner (who can '
    'disable the triggers or drop the table) or a superuser.';
COMMENT ON TRIGGER system_events_no_update_delete ON system_events IS
    'Refuses UPDATE and DELETE from every role, owner included; the owner can disable it, a superuser can skip it.';
COMMENT ON TRIGGER system_events_no_truncate ON system_events IS
    'Refuses TRUNCATE from every role, owner included; the owner can disable it, a superuser can skip it.';

-- Tenant isolation: an unset (or reset, hence empty) app.org_id matches no row.
ALTER TABLE system_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE system_events FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON system_events
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
-- The relay publishes every org's events.
CREATE POLICY relay_reads_all ON system_events FOR SELECT TO xentri_relay USING (true);

-- Writers name the columns they may set; seq, tx_id and created_at are
-- always PostgreSQL's.
REVOKE ALL ON system_events FROM PUBLIC;
GRANT SELECT ON system_events TO xentri_api, xentri_relay, xentri_worker;
GRANT INSERT (id, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at)
    ON system_events TO xentri_api, xentri_worker;
