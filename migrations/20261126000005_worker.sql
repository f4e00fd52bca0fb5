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

-- The reference PostgreSQL handler's projection: events per (org, type), in
-- one row per lane slot. Batches of a group commit concurrently; were there
-- one counter row per (org, type), each would wait for the row lock of the
-- one before, holding its transaction id open meanwhile — and every open
-- transaction id holds back the commit horizon the relay publishes below,
-- delaying every event on the server. A slot is held by one transaction of
-- the group at a time in a worker process (worker/src/runtime/slots.rs), so
-- transactions of one worker never wait on each other here. Read the counts
-- through the `event_counts` view.
CREATE TABLE event_count_slots (
    org_id     uuid        NOT NULL,
    type       text        NOT NULL,
    slot       smallint    NOT NULL CHECK (slot >= 0),
    count      bigint      NOT NULL,
    last_seq   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, type, slot)
);

ALTER TABLE event_count_slots ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_count_slots FORCE ROW LEVEL SECURITY;
CREATE POLICY org_isolation ON event_count_slots
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- Events per (org, type): the slots' rows added up. `security_invoker`: the
-- reader's row-level security applies, not the view owner's.
CREATE VIEW event_counts WITH (security_invoker = true) AS
    SELECT org_id, type, sum(count)::bigint AS count, max(last_seq) AS last_seq, max(updated_at) AS updated_at
      FROM event_count_slots
     GROUP BY org_id, type;

-- The projection's write for a whole read batch, of any orgs, in one round
-- trip: per (org, type), a count and the highest seq, added to lane slot
-- `in_slot`'s rows. Each org's rows are written under that org's
-- `app.org_id`, so row-level security checks every row as for any statement
-- (as append_events does per item); the caller's org is set back at the end.
-- The batch's transaction holds its transaction id, and so the commit horizon,
-- from its first write to its commit: one call instead of an org switch and a
-- statement per org keeps that short.
CREATE FUNCTION count_events(in_slot smallint, in_orgs uuid[], in_types text[], in_counts bigint[], in_lasts bigint[])
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    caller_org text := current_setting('app.org_id', true);
    one_org uuid;
BEGIN
    FOR one_org IN SELECT DISTINCT o FROM unnest(in_orgs) AS o ORDER BY o LOOP
        PERFORM set_config('app.org_id', one_org::text, true);
        INSERT INTO event_count_slots AS c (org_id, type, slot, count, last_seq)
        SELECT u.o, u.t, in_slot, u.n, u.s
          FROM unnest(in_orgs, in_types, in_counts, in_lasts) AS u(o, t, n, s)
         WHERE u.o = one_org
         ORDER BY u.t
        ON CONFLICT (org_id, type, slot) DO UPDATE
           SET count = c.count + EXCLUDED.count,
               last_seq = GREATEST(c.last_seq, EXCLUDED.last_seq),
               updated_at = now();
    END LOOP;
    PERFORM set_config('app.org_id', coalesce(caller_org, ''), true);
END
$$;

REVOKE ALL ON FUNCTION count_events FROM PUBLIC;
GRANT EXECUTE ON FUNCTION count_events TO xentri_worker;

REVOKE ALL ON processed_events, event_count_slots, event_counts FROM PUBLIC;
GRANT SELECT, INSERT, DELETE ON processed_events TO xentri_worker;
GRANT SELECT, INSERT, UPDATE ON event_count_slots TO xentri_worker;
GRANT SELECT ON event_counts TO xentri_worker;
-- `worker audit` (as the relay role) tells handled events from missing ones.
GRANT SELECT ON processed_events TO xentri_relay;
