-- pgbench baseline for `./scripts/bench api`: the statement POST /api/v1/events
-- runs for one append (api/src/appender.rs): one call of the `append_events`
-- function with one item, which sets the role and org, takes the key's lock
-- and writes the key, the event and its outbox row in the statement's own
-- transaction. So the same
-- round trip, locks, RLS checks, index and WAL work, without HTTP, JSON
-- handling or the pool. Run as `postgres`, as the api's pool logs in.
--
-- Differences from the api, none of which changes the database's work:
--   * expressions stand in for values the api binds (org id, key, ids);
--   * the request hash is sha256 of the key rather than of the request;
--   * pgbench reads `:name` as a variable even inside a string literal, so
--     literals holding ':' followed by a letter or digit are split in two
--     ('user:' || 'bench'); PostgreSQL folds them back into constants.
--
-- org: one of the 100 bench orgs, 00000000-0000-7000-8000-<n as 12 digits>,
-- as scripts/bench mints tokens for. key: unique per transaction.
-- id and correlation_id are UUID v7 like the api's (time-ordered, so inserts
-- land at the right edge of their indexes); PostgreSQL 15 has no uuidv7(), so
-- the 48-bit millisecond timestamp and version bits go over a random UUID.
\set org random(1, 100)
\set k random(1, 1000000000000)
SELECT item, claimed, seq FROM append_events('xentri_api', 'events:' || 'work', 86400, ARRAY[ROW(
    ('00000000-0000-7000-8000-' || lpad(:org::text, 12, '0'))::uuid,
    'pgb-' || :client_id || '-' || :k,
    sha256(convert_to('pgb-' || :client_id || '-' || :k, 'UTF8')),
    encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
    'xentri.bench.sample.v1',
    '{"soul_id":"soul-pgbench","display_name":"Bench Soul 42","revision":42,"locale":"en-GB","tags":["bench","load","soul"],"bio":"Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. "}',
    'user:' || 'bench',
    '4bf92f3577b34da6a3ce929d0e0e4736',
    encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text,
    NULL,
    now())::new_event]);
