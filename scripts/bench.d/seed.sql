-- Tops system_events up to :target rows spread over the 100 bench orgs, for the
-- read scenario of `./scripts/bench api` (psql -v target=N). Runs as the
-- superuser `postgres`, which row-level security does not apply to. The ids are
-- random UUIDs rather than v7: nothing reads them in order, and seq is what the
-- list route orders by. The payload has the shape and size (~465 bytes) of the
-- bodies scripts/bench.d/write.lua posts.
INSERT INTO system_events (id, org_id, type, payload, actor, trace_id, correlation_id, occurred_at)
SELECT gen_random_uuid(),
       ('00000000-0000-7000-8000-' || lpad((i % 100 + 1)::text, 12, '0'))::uuid,
       'xentri.bench.sample.v1',
       jsonb_build_object(
           'soul_id', 'soul-seed-' || i,
           'display_name', 'Bench Soul ' || (i % 1000),
           'revision', i,
           'locale', 'en-GB',
           'tags', jsonb_build_array('bench', 'load', 'soul'),
           'bio', repeat('Soul profile text for the benchmark. ', 9)),
       'user:bench',
       '4bf92f3577b34da6a3ce929d0e0e4736',
       'bench-' || i,
       now()
FROM generate_series(1, greatest(0, :target - (SELECT count(*) FROM system_events))) AS i;
