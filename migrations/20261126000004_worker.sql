-- The worker: its role, its processed records and projections, the relay's
-- wake-up call, and what the idempotency-key purge may delete.

DO $$
BEGIN
    CREATE ROLE xentri_worker NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- (group, event) pairs a Postgres-writing handler has processed, written in the
-- handler's own transaction: a second delivery finds its record and is skipped.
-- Runtime state, not tenant data.
CREATE TABLE processed_events (
    group_name   text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, event_id)
);

-- The reference Postgres handler's projection: events per (org, type).
CREATE TABLE event_counts (
    org_id     uuid        NOT NULL,
    type       text        NOT NULL,
    count      bigint      NOT NULL,
    last_seq   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, type)
);

ALTER TABLE event_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON event_counts
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

GRANT USAGE ON SCHEMA public TO xentri_worker;
GRANT SELECT, INSERT ON processed_events TO xentri_worker;
GRANT SELECT, INSERT, UPDATE ON event_counts TO xentri_worker;
-- Jobs are events of the platform org, relayed to jobs:work through the outbox.
GRANT SELECT, INSERT ON system_events TO xentri_worker;
GRANT INSERT ON outbox TO xentri_worker;
-- The purge job deletes expired keys of every org, and nothing else.
GRANT SELECT, DELETE ON idempotency_keys TO xentri_worker;
CREATE POLICY worker_sees_expired ON idempotency_keys FOR SELECT TO xentri_worker USING (expires_at <= now());
CREATE POLICY worker_purges_expired ON idempotency_keys FOR DELETE TO xentri_worker USING (expires_at <= now());

-- Wake the relay when outbox rows commit (LISTEN xentri_outbox); it also polls.
CREATE FUNCTION outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('xentri_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- The relay locks the rows it publishes (SELECT … FOR UPDATE SKIP LOCKED),
-- which takes UPDATE privilege; it never changes them.
GRANT UPDATE ON outbox TO xentri_relay;
CREATE POLICY relay_locks ON outbox FOR UPDATE TO xentri_relay USING (true);
