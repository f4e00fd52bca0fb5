-- Seqs are handed out and committed one appending transaction at a time.
--
-- Readers expose only rows whose transaction is older than every transaction
-- still running (the commit horizon), and tailing clients keep polling with
-- the last seq they saw. That is safe only if no transaction still running can
-- commit a lower seq than one already exposed. Two transactions appending at
-- once break it: the one with the older transaction id may take its seqs after
-- the newer one and commit first; its rows pass the horizon while the newer
-- one's lower seqs are still in flight, and a tailing client skips them for
-- good. Batches (several events per transaction) widen that window from
-- microseconds to the whole batch.
--
-- So every statement that inserts into system_events first takes one
-- transaction-scoped lock, held until commit: a transaction takes its seqs only
-- after every earlier appender committed or rolled back. Appends arrive in
-- batches (the api's group commit), so this costs one lock per batch, not per
-- event. The key is the two-int form (system_events' oid, 0), a key space apart
-- from the single-bigint locks of idempotency keys and the relay.
CREATE FUNCTION system_events_one_appender() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock('system_events'::regclass::oid::integer, 0);
    RETURN NULL;
END
$$;

CREATE TRIGGER system_events_one_appender
    BEFORE INSERT ON system_events
    FOR EACH STATEMENT EXECUTE FUNCTION system_events_one_appender();
