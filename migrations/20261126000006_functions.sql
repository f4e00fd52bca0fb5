-- The functions the services call: lock classes, appending and listing.

-- Advisory lock classes. Every advisory lock the services take is the two-key
-- form (class int4, key int4), with a class per purpose, so a client's
-- idempotency key can never meet another purpose's lock. The same ids are in
-- xentri_core::locks::LockClass (a test checks they agree); lock sites call
-- this function, never a bare number. The ids spell "xen" in their top bytes,
-- apart from other software's two-key locks; sqlx's migration lock is a
-- single bigint.
--
--   purpose       class id                   second key                      held
--   idempotency   x'78656e01' (2019913217)   hashtext(org_id || ':' || key)  by an append or a domain
--                                                                             mutation, until it commits
--   relay         x'78656e02' (2019913218)   0                               by the publishing relay's session
CREATE FUNCTION xentri_lock_class(p_purpose text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    class integer := CASE p_purpose
        WHEN 'idempotency' THEN x'78656e01'::integer
        WHEN 'relay' THEN x'78656e02'::integer
    END;
BEGIN
    IF class IS NULL THEN
        RAISE EXCEPTION 'no advisory lock class for purpose %', coalesce(p_purpose, 'NULL');
    END IF;
    RETURN class;
END
$$;

-- Claims an idempotency key of org p_org_id for the caller's transaction: the
-- one claim of every mutating route, the appends' (append_events) and the
-- domain mutations'. Returns
--   'in_flight'  another transaction holds the key's lock (409): nothing written;
--   'answered'   the key has a live answer (replay, or 422 for another
--                request): nothing written;
--   'claimed'    the key's lock is held until the transaction ends, and the key
--                row holds the answer given here (an expired key is taken over).
-- The answer is the event p_event_id (an append's), or the body p_body. A
-- domain mutation claims before it knows its answer, with an empty body, and
-- writes the answer (answer_idempotency_key) before it commits, so the empty
-- body is never seen by another transaction. Runs as the caller, under
-- row-level security: p_org_id must be the transaction's app.org_id.
CREATE FUNCTION claim_idempotency_key(
    p_org_id       uuid,
    p_key          text,
    p_request_hash bytea,
    p_status       smallint,
    p_event_id     uuid,
    p_body         text,
    p_expires      timestamptz
) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(xentri_lock_class('idempotency'), hashtext(p_org_id::text || ':' || p_key)) THEN
        RETURN 'in_flight';
    END IF;
    INSERT INTO idempotency_keys AS k (org_id, key, request_hash, response_status, event_id, response_body, expires_at)
    VALUES (p_org_id, p_key, p_request_hash, p_status, p_event_id, p_body, p_expires)
    ON CONFLICT (org_id, key) DO UPDATE
        SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
            event_id = EXCLUDED.event_id, response_body = EXCLUDED.response_body,
            created_at = now(), expires_at = EXCLUDED.expires_at
      WHERE k.expires_at <= now();
    IF NOT FOUND THEN
        RETURN 'answered';
    END IF;
    RETURN 'claimed';
END
$$;

REVOKE ALL ON FUNCTION claim_idempotency_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION claim_idempotency_key TO xentri_api, xentri_worker;

-- Writes the answer of a domain mutation under the key it claimed
-- (claim_idempotency_key), in the same transaction.
CREATE FUNCTION answer_idempotency_key(p_key text, p_status smallint, p_body text) RETURNS boolean
LANGUAGE sql AS $$
    UPDATE idempotency_keys SET response_status = p_status, response_body = p_body, event_id = NULL
     WHERE org_id = NULLIF(current_setting('app.org_id', true), '')::uuid AND key = p_key
    RETURNING true
$$;

REVOKE ALL ON FUNCTION answer_idempotency_key FROM PUBLIC;
GRANT EXECUTE ON FUNCTION answer_idempotency_key TO xentri_api;

-- One event to append, and the idempotency key that guards it (NULL: none).
CREATE TYPE new_event AS (
    org_id          uuid,
    idempotency_key text,
    request_hash    bytea,
    id              uuid,
    type            text,
    payload         text,
    actor           text,
    trace_id        text,
    correlation_id  text,
    causation_id    text,
    occurred_at     timestamptz
);

-- Appends a batch in the caller's transaction: for each item its event, its
-- outbox row aimed at p_stream, and its idempotency key. One call serves a
-- whole batch (the api's group commit: one round trip, one commit).
--
-- Runs as p_role, and each item under its own org (app.org_id), so
-- row-level security checks every row against the org it belongs to. An item
-- with a key first claims it (claim_idempotency_key), its lock held until the
-- transaction ends: while another transaction holds it the item is not
-- written and `claimed` is false (409). A key with a live answer stops the
-- item too: `seq` is NULL and the caller reads the answer back (replay, or 422
-- for another request). An expired key is taken over. `item` is the item's 1-based position.
--
-- Takes no lock, row or sequence that other appends wait for: see
-- system_events for why readers never skip what it writes.
CREATE FUNCTION append_events(
    p_role          text,
    p_stream        text,
    p_key_ttl_secs  double precision,
    p_items         new_event[]
) RETURNS TABLE (item integer, claimed boolean, seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    it        new_event;
    claim     text;
    expires   timestamptz := now() + make_interval(secs => p_key_ttl_secs);
BEGIN
    PERFORM set_config('role', p_role, true);
    item := 0;
    FOREACH it IN ARRAY p_items LOOP
        item := item + 1;
        claimed := true;
        seq := NULL;
        PERFORM set_config('app.org_id', it.org_id::text, true);
        IF it.idempotency_key IS NOT NULL THEN
            claim := claim_idempotency_key(it.org_id, it.idempotency_key, it.request_hash, 201::smallint, it.id, NULL::text,
                                           expires);
            IF claim = 'in_flight' THEN
                claimed := false;
                RETURN NEXT;
                CONTINUE;
            ELSIF claim = 'answered' THEN
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        INSERT INTO system_events AS e
            (id, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at)
        VALUES (it.id, it.org_id, it.type, it.payload::json, it.actor, it.trace_id, it.correlation_id,
                it.causation_id, it.occurred_at)
        RETURNING e.seq INTO seq;
        INSERT INTO outbox (event_seq, stream, org_id) VALUES (seq, p_stream, it.org_id);
        RETURN NEXT;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION append_events FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_events TO xentri_api, xentri_worker;

-- One page of an org's events, as p_role, in the statement's own transaction
-- (one round trip): rows below the commit horizon, after the position
-- (p_after_tx, p_after_seq) if given, in (tx_id, seq) order. Absent filters
-- are NULL. Plans are made per call with the values in hand
-- (force_custom_plan), so an absent filter drops out and the org's indexes
-- serve what is given.
CREATE FUNCTION list_events(
    p_role           text,
    p_org_id         uuid,
    p_after_tx       xid8,
    p_after_seq      bigint,
    p_limit          integer,
    p_type           text,
    p_type_like      text,
    p_correlation_id text,
    p_since          timestamptz,
    p_until          timestamptz
) RETURNS TABLE (
    id             uuid,
    seq            bigint,
    org_id         uuid,
    type           text,
    payload        json,
    actor          text,
    trace_id       text,
    correlation_id text,
    causation_id   text,
    occurred_at    timestamptz,
    tx_id          xid8
)
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    PERFORM set_config('role', p_role, true), set_config('app.org_id', p_org_id::text, true);
    RETURN QUERY
    SELECT e.id, e.seq, e.org_id, e.type, e.payload, e.actor, e.trace_id, e.correlation_id, e.causation_id,
           e.occurred_at, e.tx_id
      FROM system_events e
     WHERE e.org_id = p_org_id
       AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
       AND (p_after_tx IS NULL OR (e.tx_id, e.seq) > (p_after_tx, p_after_seq))
       AND (p_type IS NULL OR e.type = p_type)
       AND (p_type_like IS NULL OR e.type LIKE p_type_like ESCAPE '\')
       AND (p_correlation_id IS NULL OR e.correlation_id = p_correlation_id)
       AND (p_since IS NULL OR e.occurred_at >= p_since)
       AND (p_until IS NULL OR e.occurred_at < p_until)
     ORDER BY e.tx_id, e.seq
     LIMIT p_limit;
END
$$;

REVOKE ALL ON FUNCTION list_events FROM PUBLIC;
GRANT EXECUTE ON FUNCTION list_events TO xentri_api;
