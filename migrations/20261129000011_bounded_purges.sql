-- Processed records are purged once past their retention
-- (`worker.jobs.processed_retention_secs`, default 7 days), in chunks of the
-- oldest first, each chunk its own short transaction, like expired
-- idempotency keys.
--
-- The worker role may now delete processed records: the one privilege the
-- purge needs beyond the SELECT and INSERT it has. It gets no UPDATE or
-- TRUNCATE; processed_events is runtime state, not tenant data, so no
-- row-level security applies.
GRANT DELETE ON processed_events TO xentri_worker;

-- The chunks find the oldest records through this index. Building it locks
-- out inserts (handlers recording events) while it is built: on a large table
-- create it first with `CREATE INDEX CONCURRENTLY processed_events_processed_at
-- ON processed_events (processed_at)`, and this statement then does nothing.
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
