-- GET /api/v1/events in one round trip: `list_events` sets the role and
-- `app.org_id` transaction-locally, as the api's transactions do, then runs the
-- list in the statement's own transaction (instead of BEGIN and the settings,
-- the query, and ROLLBACK). Rows are exposed only below the commit horizon:
-- written by transactions older than every transaction still running.
--
-- Absent filters are NULL. Plans are made per call with the values in hand
-- (force_custom_plan), so an absent filter drops out and the org's indexes
-- serve what is given; a generic plan could not use `seq > after` as an index
-- bound.
CREATE FUNCTION list_events(
    p_role           text,
    p_org_id         uuid,
    p_after          bigint,
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
    occurred_at    timestamptz
)
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $$
BEGIN
    PERFORM set_config('role', p_role, true), set_config('app.org_id', p_org_id::text, true);
    RETURN QUERY
    SELECT e.id, e.seq, e.org_id, e.type, e.payload, e.actor, e.trace_id, e.correlation_id, e.causation_id,
           e.occurred_at
      FROM system_events e
     WHERE e.org_id = p_org_id
       AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot())
       AND (p_after IS NULL OR e.seq > p_after)
       AND (p_type IS NULL OR e.type = p_type)
       AND (p_type_like IS NULL OR e.type LIKE p_type_like ESCAPE '\')
       AND (p_correlation_id IS NULL OR e.correlation_id = p_correlation_id)
       AND (p_since IS NULL OR e.occurred_at >= p_since)
       AND (p_until IS NULL OR e.occurred_at < p_until)
     ORDER BY e.seq
     LIMIT p_limit;
END
$$;

REVOKE ALL ON FUNCTION list_events FROM PUBLIC;
GRANT EXECUTE ON FUNCTION list_events TO xentri_api;
