-- The transactional outbox: one row per (event, stream) still to be
-- published, written in the event's transaction. The relay publishes rows in
-- (tx_id, event_seq, stream) order below the commit horizon (see
-- system_events) and deletes each row once its entry is on the stream.
CREATE TABLE outbox (
    event_seq  bigint      NOT NULL REFERENCES system_events (seq),
    stream     text        NOT NULL,
    org_id     uuid        NOT NULL,
    -- The event's transaction: the relay's order and cursor.
    tx_id      xid8        NOT NULL DEFAULT pg_current_xact_id(),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_seq, stream)
);

-- The relay's scan. Published rows are deleted, and until vacuum runs their
-- dead entries sit at the low end: the relay starts each batch after the
-- last row it published, not from the start.
CREATE INDEX outbox_tx_seq_stream ON outbox (tx_id, event_seq, stream);

-- A queue: rows leave as fast as they come, so the space vacuum frees is
-- reused within seconds and never worth handing back. Cutting off the table's
-- empty end would take an ACCESS EXCLUSIVE lock, which every append's INSERT
-- queues behind, and a transaction id, which holds back the commit horizon
-- the relay publishes below: a pause of the whole pipeline on every vacuum.
-- After a backlog the table keeps its size until `VACUUM FULL outbox`.
ALTER TABLE outbox SET (vacuum_truncate = false);

ALTER TABLE outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON outbox
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY relay_reads_all ON outbox FOR SELECT TO xentri_relay USING (true);
CREATE POLICY relay_deletes_published ON outbox FOR DELETE TO xentri_relay USING (true);

REVOKE ALL ON outbox FROM PUBLIC;
GRANT INSERT (event_seq, stream, org_id) ON outbox TO xentri_api, xentri_worker;
GRANT SELECT, DELETE ON outbox TO xentri_relay;
