-- The worker's tables: processed records and the reference projection.

-- (group, event) pairs a PostgreSQL-writing handler has processed, written in
-- the handler's own transaction: a second delivery finds its record and is
-- skipped. Purged once past their retention (worker.jobs.processed_retention_secs),
-- oldest first, in chunks. Runtime state, not tenant data: no row-level
-- security.
CREATE TABLE processed_events (
    group_name   text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, event_id)
);

CREATE INDEX processed_events_processed_at ON processed_events (processed_at);

-- The reference PostgreSQL handler's projection: events per (org, type).
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

REVOKE ALL ON processed_events, event_counts FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON processed_events TO xentri_worker;
GRANT SELECT, INSERT, UPDATE ON event_counts TO xentri_worker;
-- `worker audit` (as the relay role) tells handled events from missing ones.
GRANT SELECT ON processed_events TO xentri_relay;
