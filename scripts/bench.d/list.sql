-- pgbench baseline for the reads of `./scripts/bench api`: the statement
-- GET /api/v1/events?limit=50 runs (api/src/db.rs `list_events`): one call of
-- the `list_events` function for one of the 100 bench orgs, 51 rows (the api
-- asks for one more than the page to tell whether more follow). The same
-- round trip, plan and rows, without HTTP, JSON or the pool.
\set org random(1, 100)
SELECT id, seq, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at, tx_id
  FROM list_events('xentri_api', ('00000000-0000-7000-8000-' || lpad(:org::text, 12, '0'))::uuid,
                   NULL, NULL, 51, NULL, NULL, NULL, NULL, NULL);
