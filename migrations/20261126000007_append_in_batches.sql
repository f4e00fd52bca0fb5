-- Group commit for appends: the api writes the appends that arrive while
-- earlier ones are in flight as one call, in one transaction. Each item runs
-- `append_event`, which sets `app.org_id` to the item's org before its rows
-- are written, so row-level security checks every row against its own org.
-- One commit, one round trip and one WAL flush serve the whole batch.
--
-- Arrays are parallel, one element per item; `item` in the result is the
-- 1-based position of the item it answers.
CREATE FUNCTION append_events(
    p_role            text,
    p_org_ids         uuid[],
    p_keys            text[],
    p_request_hashes  bytea[],
    p_ttl_secs        double precision,
    p_ids             uuid[],
    p_types           text[],
    p_payloads        json[],
    p_actors          text[],
    p_trace_ids       text[],
    p_correlation_ids text[],
    p_causation_ids   text[],
    p_occurred_ats    timestamptz[],
    p_stream          text
) RETURNS TABLE (item integer, claimed boolean, seq bigint)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        RETURN QUERY
        SELECT i, appended.claimed, appended.seq
          FROM append_event(p_role, p_org_ids[i], p_keys[i], p_request_hashes[i], p_ttl_secs, p_ids[i],
                            p_types[i], p_payloads[i], p_actors[i], p_trace_ids[i], p_correlation_ids[i],
                            p_causation_ids[i], p_occurred_ats[i], p_stream) AS appended;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION append_events FROM PUBLIC;
GRANT EXECUTE ON FUNCTION append_events TO xentri_api;
