-- The event row alone, for `./scripts/bench api`: one system_events insert
-- per transaction in the calibration's shape (BEGIN; role and org; INSERT;
-- COMMIT), with the table's indexes, checks and row-level security, and no
-- idempotency key or outbox row. An append does this and more, so its rate
-- cannot pass this one: beside the calibration it shows what the event table
-- itself costs.
\set org random(1, 100)
BEGIN;
SELECT set_config('role', 'xentri_api', true),
       set_config('app.org_id', '00000000-0000-7000-8000-' || lpad(:org::text, 12, '0'), true);
INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, causation_id, occurred_at)
VALUES (encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
        current_setting('app.org_id')::uuid,
        'xentri.bench.sample.v1',
        '{"soul_id":"soul-pgbench","display_name":"Bench Soul 42","revision":42,"locale":"en-GB","tags":["bench","load","soul"],"bio":"Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. Soul profile text for the benchmark. "}',
        'user:' || 'bench',
        '4bf92f3577b34da6a3ce929d0e0e4736',
        encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid::text,
        NULL,
        now());
COMMIT;
