-- POST /api/v1/events in one round trip.
--
-- The write route used to run BEGIN, the key's lock and look-up, the insert,
-- the key's insert and COMMIT as five round trips; on two cores each round
-- trip's wake-ups cost more than the work itself. `append_event` does all of
-- it as one statement, in the statement's own transaction: it sets the role
-- and `app.org_id` transaction-locally first, exactly as the api's
-- transactions do, so row-level security applies to every row it writes.
--
-- An idempotency key now points at its event instead of holding a copy of
-- the answer: the answer to an append is the event, which never changes, so
-- a replay reads it back. `response_body` stays for answers that are not an
-- event.
ALTER TABLE idempotency_keys
    ALTER COLUMN response_body DROP NOT NULL,
    ADD COLUMN event_id uuid,
    ADD CONSTRAINT idempotency_keys_response CHECK (response_body IS NOT NULL OR event_id IS NOT NULL);

-- Payloads are kept as appended, byte for byte: a read returns exactly the
-- text the append answered with, and PostgreSQL no longer re-serialises a
-- jsonb value for every row of every page (about a third of a page's
-- database time).
ALTER TABLE system_events DROP CONSTRAINT system_events_payload_object;
ALTER TABLE system_events ALTER COLUMN payload TYPE json USING payload::json;
ALTER TABLE system_events
    ADD CONSTRAINT system_events_payload_object CHECK (json_typeof(payload) = 'object');

-- Returns one row: `claimed` is false while another request holds the key
-- (409); `seq` is the new event's position, or NULL when the key already has
-- a live answer (the caller reads it back and replays it, or answers 422).
CREATE FUNCTION append_event(
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
        SELECT pg_try_advisory_xact_lock(hashtextextended(current_setting('app.org_id') || ':' || p_key, 0))
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

REVOKE ALL ON FUNCTION append_event FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_event TO xentri_api;
