-- pgbench baseline for `./scripts/bench api`: the transaction POST /api/v1/events
-- runs (api/src/db.rs, idempotency.rs, events.rs), statement by statement, so
-- the same round trips, locks, RLS checks, index and WAL work, without HTTP,
-- JSON handling or the pool. Run as `postgres`; the first statement drops to
-- xentri_api, as the api does, so forced row-level security applies.
--
-- Differences from the api, none of which changes the database's work:
--   * expressions stand in for values the api binds (org id, key, ids);
--   * the request hash is sha256 of the key rather than of the request;
--   * pgbench reads `:name` as a variable even inside a string literal, so
--     literals holding ':' followed by a letter or digit are split in two
--     ('user:' || 'bench'); PostgreSQL folds them back into constants;
--   * response_body is 800 bytes of filler, the size the api stores for the
--     ~500-byte body of scripts/bench.d/write.lua.
--
-- org: one of the 100 bench orgs, 00000000-0000-7000-8000-<n as 12 digits>,
-- as scripts/bench mints tokens for. key: unique per transaction.
\set org random(1, 100)
\set k random(1, 1000000000000)
BEGIN;
SELECT set_config('role', 'xentri_api', true),
       set_config('app.org_id', '00000000-0000-7000-8000-' || lpad(:org::text, 12, '0'), true);
SELECT pg_try_advisory_xact_lock(hashtextextended(current_setting('app.org_id') || ':' || ('pgb-' || :client_id || '-' || :k), 0)),
       k.request_hash, k.response_status, k.response_body
  FROM (SELECT 1) AS one
  LEFT JOIN idempotency_keys k ON k.key = ('pgb-' || :client_id || '-' || :k) AND k.expires_at > now();
-- id and correlation_id are UUID v7 like the api's (time-ordered, so inserts
-- land at the right edge of their indexes); PostgreSQL 15 has no uuidv7(), so
-- the 48-bit millisecond timestamp and version bits go over a random UUID.
WITH ev AS (
    INSERT INTO system_events
        (id, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at)
    VALUES (
        encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
        current_setting('app.org_id')::uuid,
        'xentri.soul.updated.v1',
        '{"soul_id":"soul-pgbench","display_name":"Bench Soul 42","revision": 42,"locale":"en-GB","tags":["bench","load","soul"],"bio":"Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. "}'::jsonb,
        'user:' || 'bench',
        '4bf92f3577b34da6a3ce929d0e0e4736',
        encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text,
        NULL,
        now())
    RETURNING id, seq, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at
), outbox_row AS (
    INSERT INTO outbox (event_seq, stream, org_id) SELECT seq, 'events:' || 'work', org_id FROM ev
)
SELECT id, seq, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at FROM ev;
INSERT INTO idempotency_keys (org_id, key, request_hash, response_status, response_body, expires_at)
VALUES (current_setting('app.org_id')::uuid, 'pgb-' || :client_id || '-' || :k,
        sha256(convert_to('pgb-' || :client_id || '-' || :k, 'UTF8')), 201, repeat('r', 800),
        now() + make_interval(secs => 86400))
ON CONFLICT (org_id, key) DO UPDATE
   SET request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status,
       response_body = EXCLUDED.response_body, created_at = now(), expires_at = EXCLUDED.expires_at
 WHERE idempotency_keys.expires_at <= now();
COMMIT;
