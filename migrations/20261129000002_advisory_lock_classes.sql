-- Advisory lock classes: every advisory lock is the two-key form
-- pg_advisory_xact_lock(class int4, key int4), with a class per purpose.
--
-- The idempotency lock used to be hashtextextended(org || ':' || key), a
-- single bigint chosen through the client's key, in the same key space as the
-- relay's lock (a bigint constant): a key hashing onto the relay's lock would
-- have stalled publishing, or been refused while the relay held it. Within its
-- class a key's hash can only meet another key's (a spurious 409 needs two
-- keys in flight at once with equal 32-bit hashes).
--
-- The classes, listed here and in xentri_core::locks::LockClass (the same ids;
-- a test checks they agree):
--
--   purpose       class id                   second key                     taken by
--   idempotency   x'78656e01' (2019913217)   hashtext(org_id || ':' || key)  append_event
--   relay         x'78656e02' (2019913218)   0                              the worker's relay
--   append        x'78656e03' (2019913219)   0                              system_events_one_appender
--
-- A new purpose gets a line in xentri_lock_class (CREATE OR REPLACE in a new
-- migration) and a LockClass variant; lock sites call xentri_lock_class, never
-- a bare number. The ids spell "xen" in their top bytes, apart from other
-- software's two-key locks; sqlx's migration lock is a single bigint.
--
-- During a rolling deploy a worker still running the previous build takes the
-- relay's old bigint lock, so it and a new worker may publish at the same
-- time until it stops (rows are still published once: SKIP LOCKED).
CREATE FUNCTION xentri_lock_class(p_purpose text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    class integer := CASE p_purpose
        WHEN 'idempotency' THEN x'78656e01'::integer
        WHEN 'relay' THEN x'78656e02'::integer
        WHEN 'append' THEN x'78656e03'::integer
    END;
BEGIN
    IF class IS NULL THEN
        RAISE EXCEPTION 'no advisory lock class for purpose %', coalesce(p_purpose, 'NULL');
    END IF;
    RETURN class;
END
$$;

-- As in migration 6, but the key's lock is in the idempotency class.
CREATE OR REPLACE FUNCTION append_event(
    p_role           text,
    p_org_id         uuid,
    p_key            text,
    p_request_hash   bytea,
    p_ttl_secs       double precision,
    p_id             uuid,
    p_type           text,
    p_payload        json,
    p_actor          text,
    p_trace_id       text,
    p_correlation_id text,
    p_causation_id   text,
    p_occurred_at    timestamptz,
    p_stream         text
) RETURNS TABLE (claimed boolean, seq bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('role', p_role, true), set_config('app.org_id', p_org_id::text, true);
    RETURN QUERY
    WITH claim AS (
        -- Held until the statement's transaction ends: a second request with
        -- the same key meanwhile is told the first is in flight.
        SELECT pg_try_advisory_xact_lock(xentri_lock_class('idempotency'),
                                         hashtext(current_setting('app.org_id') || ':' || p_key))
            AS claimed
    ), key_row AS (
        -- A live key stops here (no row), an expired one is taken over.
        INSERT INTO idempotency_keys (org_id, key, request_hash, response_status, event_id, expires_at)
        SELECT p_org_id, p_key, p_request_hash, 201, p_id, now() + make_interval(secs => p_ttl_secs)
          FROM claim WHERE claim.claimed
        ON CONFLICT (org_id, key) DO UPDATE
            SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
                response_body = NULL, event_id = EXCLUDED.event_id,
                created_at = now(), expires_at = EXCLUDED.expires_at
          WHERE idempotency_keys.expires_at <= now()
        RETURNING event_id
    ), ev AS (
        INSERT INTO system_events
            (id, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at)
        SELECT key_row.event_id, p_org_id, p_type, p_payload, p_actor, p_trace_id, p_correlation_id,
               p_causation_id, p_occurred_at
          FROM key_row
        RETURNING system_events.seq, system_events.org_id
    ), outbox_row AS (
        INSERT INTO outbox (event_seq, stream, org_id) SELECT ev.seq, p_stream, ev.org_id FROM ev
    )
    SELECT claim.claimed, ev.seq FROM claim LEFT JOIN ev ON true;
END
$$;

-- As in migration 8, but in the append class instead of (system_events' oid, 0).
CREATE OR REPLACE FUNCTION system_events_one_appender() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(xentri_lock_class('append'), 0);
    RETURN NULL;
END
$$;
